"""Every config file builds; the maze3d family is parameter-matched and differs only in the mixer;
config-argument parsing and overrides fail loudly on typos."""

import functools
import pathlib

import ml_collections
import pytest

from configs import common, maze3d_lssvwm
from lssvwm.config_loading import apply_override, load_config

CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent / "configs"
CONFIG_FILES = sorted(
    p for p in CONFIG_DIR.glob("*.py") if p.name not in ("__init__.py", "common.py")
)


def variants_of(path: pathlib.Path) -> list[str]:
    """The file itself plus every variant its module lists in VARIANTS (if any)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_probe_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [str(path)] + [f"{path}:{v}" for v in getattr(module, "VARIANTS", ())]


@pytest.mark.parametrize(
    "spec", [s for p in CONFIG_FILES for s in variants_of(p)], ids=lambda s: s.split("/")[-1]
)
def test_every_config_file_builds_and_is_locked(spec):
    config = load_config(spec)
    assert isinstance(config, ml_collections.ConfigDict)
    assert config.to_dict(), f"{spec} built an empty config"
    with pytest.raises((AttributeError, KeyError)):
        config.this_key_does_not_exist = 1
    if "model" in config:  # the model section builds a model (shapes only: no memory, no FLOPs)
        from lssvwm.models import WorldModelConfig, count_parameters

        assert count_parameters(WorldModelConfig.from_mapping(config.model.to_dict())) > 0


def test_parse_arg_types_flags_and_positional_first_field():
    parsed = common.parse_arg(
        "tiny,runlocal,steps=20,lr=0.5", variant="base", runlocal=False, steps=1000, lr=1e-3
    )
    assert parsed.variant == "tiny" and parsed.runlocal is True
    assert parsed.steps == 20 and isinstance(parsed.steps, int) and parsed.lr == 0.5
    assert common.parse_arg("", variant="base").variant == "base"
    assert common.parse_arg("runlocal=false", runlocal=True).runlocal is False


@pytest.mark.parametrize(
    "arg,message",
    [("stepz=3", "stepz"), ("steps=many", "expected int"), ("runlocal=maybe", "expected a bool")],
)
def test_parse_arg_rejects_unknown_keys_and_bad_values(arg, message):
    with pytest.raises(ValueError, match=message):
        common.parse_arg(arg, steps=1, runlocal=False)


def test_load_config_errors_and_overrides(tmp_path):
    path = tmp_path / "tiny.py"
    path.write_text(
        "import ml_collections\n"
        "from configs import common\n"
        "def get_config(arg=None):\n"
        "    a = common.parse_arg(arg, width=8)\n"
        "    return ml_collections.ConfigDict({'model': {'width': a.width, 'depth': 2}})\n"
    )
    config = load_config(f"{path}:width=16", overrides={"model.depth": "4"})
    assert config.model.width == 16 and config.model.depth == 4
    with pytest.raises(KeyError, match="model.dpeth"):
        apply_override(config, "model.dpeth", 3)
    with pytest.raises(KeyError, match="modle"):
        apply_override(config, "modle.depth", 3)
    with pytest.raises(FileNotFoundError):
        load_config(str(tmp_path / "missing.py"))
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(AttributeError, match="get_config"):
        load_config(str(tmp_path / "empty.py"))


# ---- the maze3d family: one base, only the sequence mixer (and its own fields) differs ---------

MAZE3D = CONFIG_DIR / "maze3d_lssvwm.py"
# Model fields a family member may set differently from LSSVWM (everything else must be equal).
MIXER_FIELDS = ("model.mixer", "model.depth", "model.block_sizes", "model.attention_window")
MIXER_FIELD_PREFIXES = ("model.memory_", "model.depth_")


def flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@functools.cache
def maze3d_parameters(name: str) -> int:
    from lssvwm.models import WorldModelConfig, count_parameters

    model = load_config(f"{MAZE3D}:mixer={name}").model.to_dict()
    return count_parameters(WorldModelConfig.from_mapping(model))


@pytest.mark.parametrize("name", list(maze3d_lssvwm.FAMILY))
def test_maze3d_family_member_builds_with_its_own_file_and_matches_parameters(name):
    config = load_config(f"{MAZE3D}:mixer={name}")
    assert config.model.mixer == maze3d_lssvwm.FAMILY[name]["mixer"]
    own_file = CONFIG_DIR / f"maze3d_{name}.py"
    assert own_file.is_file(), f"no thin config file {own_file.name} for family member {name}"
    assert load_config(str(own_file)).to_dict() == config.to_dict()
    count, reference = maze3d_parameters(name), maze3d_parameters("lssvwm")
    assert abs(count - reference) <= 0.05 * reference, (
        f"maze3d {name}: {count:,} parameters vs LSSVWM's {reference:,} "
        f"({count / reference - 1:+.1%}; the family is matched within 5%)"
    )


@pytest.mark.parametrize("name", [n for n in maze3d_lssvwm.FAMILY if n != "lssvwm"])
def test_maze3d_family_member_differs_from_lssvwm_only_in_mixer_fields(name):
    reference = flatten(load_config(str(MAZE3D)).to_dict())
    config = flatten(load_config(f"{MAZE3D}:mixer={name}").to_dict())
    differing = {k for k in reference.keys() | config.keys() if reference.get(k) != config.get(k)}
    unexpected = sorted(
        k for k in differing if k not in MIXER_FIELDS and not k.startswith(MIXER_FIELD_PREFIXES)
    )
    assert not unexpected, (
        f"maze3d {name} differs from LSSVWM outside its mixer fields: "
        + ", ".join(f"{k}: {reference.get(k)!r} vs {config.get(k)!r}" for k in unexpected)
    )
    assert "model.mixer" in differing or "model.block_sizes" in differing


def test_maze3d_family_windows_and_window_override():
    assert load_config(f"{MAZE3D}:mixer=lssvwm").model.attention_window == 4
    assert load_config(f"{MAZE3D}:mixer=lssvwm_1x1").model.block_sizes == ((1, 1),)
    window = CONFIG_DIR / "maze3d_causal_window.py"
    assert load_config(str(window)).model.attention_window == maze3d_lssvwm.CONTROL_WINDOW == 16
    assert load_config(f"{window}:window=4").model.attention_window == 4
    with pytest.raises(ValueError, match="unknown maze3d experiment"):
        maze3d_lssvwm.get_config("mixer=mamba3")
