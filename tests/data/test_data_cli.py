"""Data config defaults, the build CLI and the preview pictures."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from test_maze3d_world import TINY

from lssvwm.data import config, maze3d, preview, sources

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_defaults_name_the_presets():
    for preset in ("default", "small"):
        data = config.maze3d_defaults(preset)
        assert maze3d.Maze3d.from_config(data).builder_config.name == preset
    small = config.get_config("maze3d_small")
    assert (small.maze3d.height, small.maze3d.maze_rows, small.maze3d.num_colors) == (32, 5, 8)
    assert "depth" not in small.fields
    with pytest.raises(ValueError, match="unknown maze3d preset"):
        config.maze3d_defaults("huge")
    with pytest.raises(ValueError, match="unknown data config"):
        config.get_config("mnist")


def test_memory_maze_defaults_name_the_presets_without_the_extra():
    tiny = config.get_config("memory_maze_tiny")
    assert tiny.dataset == "memory_maze" and tiny.memory_maze.episode_length == 128
    assert config.memory_maze_defaults().memory_maze.maze_size == 9
    with pytest.raises(ValueError, match="unknown memory_maze preset"):
        config.memory_maze_defaults("huge")


def _tiny_config(data_dir):
    data = config.maze3d_defaults()
    data.data_dir = str(data_dir)
    data.num_workers = 0
    for key, value in TINY.to_dict().items():
        data.maze3d[key] = value
    return data


def test_build_cli_builds_in_parallel_and_reports_the_rate(tmp_path):
    overrides = [f"--data.maze3d.{k}={v}" for k, v in TINY.to_dict().items()]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lssvwm.data.build",
            f"--data={REPO}/lssvwm/data/config.py:maze3d",
            f"--data.data_dir={tmp_path}",
            "--num_workers=2",
            *overrides,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": REPO},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "frames/s" in result.stdout
    assert "train: 12 segment records in 2 shards" in result.stdout
    # The same dataset as an in-process build of the same config.
    builder = sources.get_builder(_tiny_config(tmp_path))
    episode = sources.read_episode(sources.SegmentSource(builder, "test"), 0)
    np.testing.assert_array_equal(
        episode["frames"], maze3d.generate_episode(TINY, "test", 0)["frames"]
    )


def test_preview_writes_sheet_gif_and_map(tmp_path):
    paths = preview.preview_episode(
        _tiny_config(tmp_path / "tfds"), str(tmp_path / "out"), split="train", episode=1, frames=32
    )
    assert set(paths) == {"sheet", "gif", "map"}
    sheet = np.asarray(Image.open(paths["sheet"]))
    assert sheet.ndim == 3 and sheet.shape[0] > 2 * 32  # frame rows and depth rows
    gif = Image.open(paths["gif"])
    assert gif.n_frames == 32
    assert Image.open(paths["map"]).size[0] > 200


def test_depth_colouring_handles_sky():
    depth = np.array([[[1.0, 2.0], [np.inf, 0.5]]], np.float32)
    rgb = preview.depth_to_rgb(depth)
    assert rgb.shape == (1, 2, 2, 3) and rgb.dtype == np.uint8
    assert (rgb[0, 1, 0] == 0).all()  # sky is black
    assert rgb[0, 1, 1].sum() > rgb[0, 0, 1].sum()  # nearer is brighter
