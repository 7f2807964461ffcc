"""Unknown config keys name the nearest known one (lssvwm.config_loading, config_schema)."""

import dataclasses

import pytest

from lssvwm.config_loading import (
    ConfigFileError,
    UnknownConfigKeyError,
    apply_override,
    check_key,
    load_config,
    nearest_key,
)
from lssvwm.config_schema import ConfigError, parse_section

TINY = "configs/quickstart.py:tiny"


@pytest.fixture(scope="module")
def config():
    return load_config(TINY)


@pytest.mark.parametrize(
    "typo, nearest",
    [
        ("model.widht", "model.width"),  # the last part misspelt
        ("modle.depth", "model.depth"),  # a section misspelt
        ("modle.widht", "model.width"),  # both
        ("traning.steps", "training.steps"),
        ("model.steps", "training.steps"),  # in another section
        ("data.maze3d.test_episods", "data.maze3d.test_episodes"),
        ("model.qqqqq", None),
    ],
)
def test_nearest_key(config, typo, nearest):
    assert nearest_key(config, typo) == nearest


def test_an_unknown_key_is_one_line_naming_the_file_and_the_nearest_key(config):
    with pytest.raises(UnknownConfigKeyError) as raised:
        check_key(config, "model.widht", source=TINY)
    message = str(raised.value)
    assert message == f"{TINY}: unknown config key model.widht (did you mean model.width?)"
    assert raised.value.key == "model.widht" and raised.value.suggestion == "model.width"
    assert isinstance(raised.value, KeyError | ValueError)  # what callers caught before


def test_without_a_near_key_the_section_lists_its_keys(config):
    with pytest.raises(UnknownConfigKeyError, match=r"model.qqqqq \(model has: action_mode, "):
        check_key(config, "model.qqqqq")
    with pytest.raises(UnknownConfigKeyError, match=r"model.width is a value, not a section"):
        check_key(config, "model.width.x")
    check_key(config, "model")  # a section is a key too
    check_key(config, "data.maze3d.test_episodes")


def test_apply_override_names_the_key_and_its_prefix(config):
    data = config.data
    with pytest.raises(KeyError, match=r"data.maze3d.test_episods \(did you mean data.maze3d"):
        apply_override(data, "maze3d.test_episods", "3", prefix="data")
    with pytest.raises(ConfigError, match="data.maze3d.test_episodes cannot be set to 'many'"):
        apply_override(
            data.copy_and_resolve_references(), "maze3d.test_episodes", "many", prefix="data"
        )


def test_config_file_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.py: config file does not exist"):
        load_config(str(tmp_path / "missing.py"))
    (tmp_path / "bad.py").write_text("def get_config(:\n")
    with pytest.raises(ConfigFileError, match="bad.py: cannot import the config file: Syntax"):
        load_config(str(tmp_path / "bad.py"))
    with pytest.raises(ConfigFileError, match="quickstart.py:huge: unknown quickstart variant"):
        load_config("configs/quickstart.py:huge")


@dataclasses.dataclass(frozen=True)
class _Section:
    batch_size: int = 1
    steps: int = 1


def test_check_known_keys_names_the_nearest():
    with pytest.raises(ConfigError) as raised:
        parse_section(_Section, {"batch_sise": 2}, "training")
    assert str(raised.value) == (
        "training.batch_sise is unknown (did you mean training.batch_size? "
        "known training keys: batch_size, steps)"
    )
    with pytest.raises(ConfigError, match=r"training.zzz is unknown \(known training keys"):
        parse_section(_Section, {"zzz": 2}, "training")
