"""TFDS conventions: `import lssvwm.data` registers the builders, presets are named configs."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import tensorflow_datasets as tfds

from lssvwm.config_loading import load_config
from lssvwm.data import config, maze3d, memory_maze, tfds_common


def test_importing_the_package_lets_tfds_find_and_build_the_datasets(tmp_path):
    # A fresh interpreter: only `import lssvwm.data` may make the names known to TFDS.
    code = textwrap.dedent(
        f"""
        import json, sys
        import tensorflow_datasets as tfds
        import lssvwm.data

        names = {{n: tfds.builder(n, data_dir={str(tmp_path)!r}).builder_config.name
                 for n in ("maze3d", "maze3d/small", "memory_maze/9x9")}}
        # As a user writes it: no data_dir (TFDS_DATA_DIR here) and no builder_kwargs, so
        # TFDS passes file_format=FileFormat.ARRAY_RECORD (an enum) to the builder.
        test = tfds.data_source("maze3d/quickstart_tiny", split="test")
        print(json.dumps({{
            "names": names,
            "records": len(test),
            "frames": list(test[0]["frames"].shape),
            "simulator": "mujoco" in sys.modules,
            "tensorflow": "tensorflow" in sys.modules,
        }}))
        """
    )
    env = {**os.environ, "TFDS_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["names"] == {
        "maze3d": "default",
        "maze3d/small": "small",
        "memory_maze/9x9": "9x9",
    }
    assert found["records"] == 2 * 2 and found["frames"] == [32, 16, 16, 3]  # built on first use
    assert not found["simulator"] and not found["tensorflow"]
    assert (tmp_path / "maze3d" / "quickstart_tiny" / "1.0.0").is_dir()


@pytest.mark.parametrize("variant, preset", [("", "quickstart"), (":tiny", "quickstart_tiny")])
def test_the_quickstart_data_lives_under_a_named_config(variant, preset):
    data = load_config(f"configs/quickstart.py{variant}").data
    assert maze3d.Maze3d.from_config(data).builder_config.name == preset
    assert config.maze3d_defaults(preset).maze3d.to_dict() == data.maze3d.to_dict()


def test_parameters_of_no_preset_get_a_hash_of_themselves():
    data = config.maze3d_defaults("quickstart")
    data.maze3d.train_episodes = 7
    named = maze3d.Maze3d.from_config(data).builder_config
    assert named.name == tfds_common.config_name_for(named.params)
    assert named.name.startswith("custom_") and named.params["train_episodes"] == 7
    data.maze3d.train_episodes = 64  # back to the preset's value: its name again
    assert maze3d.Maze3d.from_config(data).builder_config.name == "quickstart"


def test_every_preset_is_a_tfds_config_name():
    for builder in (maze3d.Maze3d, memory_maze.MemoryMaze):
        names = [c.name for c in builder.BUILDER_CONFIGS]
        assert len(set(names)) == len(names)
        for name in names:
            assert tfds.builder_cls(builder.name).builder_configs[name].name == name
