"""Every variant of every config file builds and passes the checks of every section it has; config
files read alone (no experiment file imports another); the maze3d family is parameter-matched
and differs only in the mixer; config-argument parsing and overrides fail loudly on typos."""

import ast
import functools
import pathlib

import ml_collections
import pytest

from configs import common, maze3d_family, maze3d_lssvwm
from lssvwm.config_loading import apply_override, config_module, load_config

CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent / "configs"


def defines_get_config(path: pathlib.Path) -> bool:
    tree = ast.parse(path.read_text())
    return any(isinstance(n, ast.FunctionDef) and n.name == "get_config" for n in tree.body)


# Experiment files (a `get_config`) and the shared modules they read (common.py: argument parsing;
# base.py: the shared sections; family modules such as maze3d_family.py).
CONFIG_FILES = sorted(p for p in CONFIG_DIR.glob("*.py") if defines_get_config(p))
SHARED_MODULES = sorted(
    p for p in CONFIG_DIR.glob("*.py") if p.name != "__init__.py" and not defines_get_config(p)
)
EXPERIMENTS = {p.stem for p in CONFIG_FILES}


def variants_of(path: pathlib.Path) -> list[str]:
    """The file itself plus every variant its module lists in VARIANTS (if any)."""
    module = config_module(str(path))
    return [str(path)] + [f"{path}:{v}" for v in getattr(module, "VARIANTS", ())]


# ---- validating a built config, section by section ----------------------------------------------


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Raises if a section of `config` would fail where the trainer parses it.

    A training config (one with a `training` section) is parsed whole into the run spec the
    trainer uses (lssvwm.run_spec.RunSpec: every section typed, the cross-section checks, the
    dataset's layout against the model); a model-only config (configs/network_cpu.py) through
    the model schema. Shapes only: no data is built, nothing compiles.
    """
    from lssvwm.models import WorldModelConfig, count_parameters
    from lssvwm.run_spec import RunSpec

    if "training" in config:
        model = RunSpec.from_config(config).model
    else:
        assert set(config) == {"model"}, f"a config without training has {sorted(config)}"
        model = WorldModelConfig.from_mapping(config.model)
    assert count_parameters(model) > 0


@pytest.mark.parametrize(
    "spec", [s for p in CONFIG_FILES for s in variants_of(p)], ids=lambda s: s.split("/")[-1]
)
def test_every_config_file_builds_validates_and_is_locked(spec):
    config = load_config(spec)
    assert isinstance(config, ml_collections.ConfigDict)
    assert config.to_dict(), f"{spec} built an empty config"
    with pytest.raises((AttributeError, KeyError)):
        config.this_key_does_not_exist = 1
    validate_config(config)


# ---- config files read alone ---------------------------------------------------------------------


def configs_imports(path: pathlib.Path) -> set[str]:
    """The modules of configs/ that the file at `path` imports, in any import form."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("configs.")}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: `from . import x`, `from .x import y`
                found |= {module.split(".")[0]} if module else {a.name for a in node.names}
            elif module == "configs":
                found |= {a.name for a in node.names}
            elif module.startswith("configs."):
                found.add(module.split(".")[1])
    return found


def test_config_files_split_into_experiments_and_a_small_shared_base():
    assert {"quickstart", "maze3d_lssvwm", "paper_200m"} <= EXPERIMENTS
    assert {"common", "base", "maze3d_family"} <= {p.stem for p in SHARED_MODULES}


@pytest.mark.parametrize("path", CONFIG_FILES + SHARED_MODULES, ids=lambda p: p.name)
def test_no_config_file_imports_an_experiment_file(path):
    imported = configs_imports(path) & EXPERIMENTS
    assert not imported, (
        f"{path.name} imports the experiment file(s) {sorted(imported)}: an experiment reads "
        "configs/base.py and at most one family module, never another experiment"
    )


@pytest.mark.parametrize("path", CONFIG_FILES + SHARED_MODULES, ids=lambda p: p.name)
def test_config_files_read_one_base_and_at_most_one_family(path):
    families = configs_imports(path) - {"common", "base"}
    if path in SHARED_MODULES:  # a family builds on the base only: no chains of families
        assert not families, f"shared module {path.name} imports {sorted(families)}"
    else:
        assert len(families) <= 1, f"{path.name} reads several families: {sorted(families)}"


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


# ---- the maze3d family: one recipe, only the sequence mixer (and its own fields) differs -------

MAZE3D = CONFIG_DIR / "maze3d_lssvwm.py"  # `:mixer=NAME` is the same as maze3d_NAME.py
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


@pytest.mark.parametrize("name", list(maze3d_family.FAMILY))
def test_maze3d_family_member_builds_with_its_own_file_and_matches_parameters(name):
    config = load_config(f"{MAZE3D}:mixer={name}")
    assert config.model.mixer == maze3d_family.FAMILY[name]["mixer"]
    own_file = CONFIG_DIR / f"maze3d_{name}.py"
    assert own_file.is_file(), f"no thin config file {own_file.name} for family member {name}"
    assert load_config(str(own_file)).to_dict() == config.to_dict()
    count, reference = maze3d_parameters(name), maze3d_parameters("lssvwm")
    assert abs(count - reference) <= 0.05 * reference, (
        f"maze3d {name}: {count:,} parameters vs LSSVWM's {reference:,} "
        f"({count / reference - 1:+.1%}; the family is matched within 5%)"
    )


@pytest.mark.parametrize("name", [n for n in maze3d_family.FAMILY if n != "lssvwm"])
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
    assert load_config(str(window)).model.attention_window == maze3d_family.CONTROL_WINDOW == 16
    assert load_config(f"{window}:window=4").model.attention_window == 4
    with pytest.raises(ValueError, match="unknown maze3d experiment"):
        maze3d_lssvwm.get_config("mixer=mamba3")
