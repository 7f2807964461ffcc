"""Configs by name (`quickstart:tiny`) as well as by path, the listing of `python -m
lssvwm.configs`, copied config files, and `lssvwm.train --show_config`."""

import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from lssvwm.config_loading import (
    ConfigFileError,
    MissingConfigFileError,
    NoGetConfigError,
    available_configs,
    format_config_list,
    load_config,
)
from lssvwm.models import WorldModelConfig

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_a_name_loads_the_same_config_as_its_path():
    by_name = load_config("quickstart:tiny", {"training.steps": 3})
    by_path = load_config(str(REPO / "configs" / "quickstart.py") + ":tiny")
    assert by_name.training.steps == 3
    by_path.unlock().training.steps = 3
    assert by_name.to_dict() == by_path.to_dict()
    assert load_config("maze3d_lssvwm:mixer=mamba2").to_dict() == (
        load_config("configs/maze3d_mamba2.py").to_dict()
    )


def test_bad_names_are_one_line_naming_the_config():
    with pytest.raises(MissingConfigFileError) as raised:
        load_config("quickstrat:tiny")
    message = str(raised.value)
    assert message.startswith("quickstrat:tiny: no config named quickstrat (did you mean quicks")
    assert "python -m lssvwm.configs" in message and "\n" not in message
    with pytest.raises(NoGetConfigError, match="base: config 'base' defines no get_config()"):
        load_config("base")
    with pytest.raises(ConfigFileError, match="quickstart:huge: unknown quickstart variant"):
        load_config("quickstart:huge")


def test_a_missing_configs_path_names_the_shipped_config(tmp_path):
    missing = tmp_path / "configs" / "quickstart.py"
    with pytest.raises(MissingConfigFileError) as raised:
        load_config(f"{missing}:tiny")
    assert str(raised.value) == (
        f"{missing}:tiny: config file does not exist "
        "(the shipped config of that name is --config=quickstart)"
    )


def test_a_copied_config_file_imports_the_shipped_ones(tmp_path):
    """The configs import each other relatively: a copy elsewhere reads the shipped base."""
    copy = tmp_path / "my_quickstart.py"
    shutil.copy(REPO / "configs" / "quickstart.py", copy)
    assert "from . import base, common" in copy.read_text()
    assert load_config(f"{copy}:tiny").to_dict() == load_config("quickstart:tiny").to_dict()


def test_the_listing_names_every_experiment_with_its_description_and_variants():
    entries = {entry.name: entry for entry in available_configs()}
    shipped = {p.stem for p in (REPO / "configs").glob("*.py") if "def get_config" in p.read_text()}
    assert set(entries) == shipped  # shared modules (base, common, families) are not listed
    quickstart = entries["quickstart"]
    assert quickstart.description.startswith("Quickstart: a ~2M-parameter LSSVWM")
    assert quickstart.variants == ("quickstart:tiny",)
    assert "maze3d_memory:mixer=mamba2" in entries["maze3d_memory"].variants
    for entry in entries.values():
        assert entry.description and "\n" not in entry.description, entry
    listing = format_config_list(list(entries.values()))
    assert "  quickstart " in listing and "quickstart:tiny" in listing


def test_show_config_prints_every_field_and_trains_nothing(tmp_path):
    """`--show_config`: the resolved config as JSON -- the override applied, and fields the
    config file leaves out at their defaults -- with no --workdir and nothing written."""
    command = [
        sys.executable,
        "-m",
        "lssvwm.train",
        "--config=quickstart:tiny",
        "--config.training.steps=7",
        "--show_config",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's code, from another folder
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    shown = json.loads(result.stdout)
    assert shown["training"]["steps"] == 7
    file_keys = load_config("quickstart:tiny").to_dict()
    assert "state" not in file_keys and "memory_frames" not in file_keys["model"]
    assert shown["state"]["carry"] is False  # an optional section, at its defaults
    default = dataclasses.fields(WorldModelConfig)
    memory_frames = next(f.default for f in default if f.name == "memory_frames")
    assert shown["model"]["memory_frames"] == memory_frames  # a field the file leaves out
    assert shown["model"]["width"] == file_keys["model"]["width"]
    assert list(tmp_path.iterdir()) == []
