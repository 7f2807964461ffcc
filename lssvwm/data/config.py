"""The `data` section of experiment configs (ml_collections), for embedding in config files:

    from lssvwm.data.config import maze3d_defaults
    config.data = maze3d_defaults("small")     # or "default" (64x64)
    config.data.maze3d.train_episodes = 256    # any Maze3dParams field

Fields:
  dataset       which builder (`lssvwm.data.sources.DATASET_BUILDERS`)
  data_dir      where TFDS datasets live (None: TFDS's default, ~/tensorflow_datasets)
  num_workers   processes generating episodes on first use (None: all CPUs)
  <dataset>     generation parameters of that builder (`data.maze3d`: `Maze3dParams`)
  train_split, eval_split   splits read for training and held-out evaluation
  fields        fields the pipelines decode (add "depth" for the spatial-memory model)

It is also a config file for the data CLIs (`--data=lssvwm/data/config.py:maze3d_small`):
`get_config(arg)` with arg `maze3d` (the default preset), `maze3d_<preset>`, `memory_maze`,
`memory_maze_<preset>` or `video_folder`.

Public API: maze3d_defaults(preset), memory_maze_defaults(preset), video_folder_defaults(path),
            get_config(arg)
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from lssvwm.data import maze3d


def _common(dataset: str) -> ml_collections.ConfigDict:
    data = ml_collections.ConfigDict()
    data.dataset = dataset
    data.data_dir = config_dict.placeholder(str)
    data.num_workers = config_dict.placeholder(int)
    data.train_split = "train"
    data.eval_split = "test"
    data.fields = ("frames", "actions", "position")
    return data


def maze3d_defaults(preset: str = "default") -> ml_collections.ConfigDict:
    """The `data` ConfigDict for maze3d with the parameters of a `Maze3d` preset."""
    presets = {c.name: c for c in maze3d.Maze3d.BUILDER_CONFIGS}
    if preset not in presets:
        raise ValueError(f"unknown maze3d preset {preset!r}; known: {sorted(presets)}")
    data = _common("maze3d")
    data.maze3d = ml_collections.ConfigDict(dict(presets[preset].params))
    return data


def video_folder_defaults(path: str = "") -> ml_collections.ConfigDict:
    """The `data` ConfigDict for a folder of `.npz`/`.mp4` episodes (see `video_folder`)."""
    from lssvwm.data import video_folder

    data = _common("video_folder")
    data.fields = ("frames", "actions")
    data.video_folder = ml_collections.ConfigDict(video_folder.default_params(path))
    return data


def memory_maze_defaults(preset: str = "9x9") -> ml_collections.ConfigDict:
    """The `data` ConfigDict for memory_maze with the parameters of a `MemoryMaze` preset.

    Building needs the `memory_maze` extra; reading a built dataset does not.
    """
    from lssvwm.data import memory_maze

    presets = {c.name: c for c in memory_maze.MemoryMaze.BUILDER_CONFIGS}
    if preset not in presets:
        raise ValueError(f"unknown memory_maze preset {preset!r}; known: {sorted(presets)}")
    data = _common("memory_maze")
    data.memory_maze = ml_collections.ConfigDict(dict(presets[preset].params))
    return data


def get_config(arg: str = "maze3d") -> ml_collections.ConfigDict:
    """`maze3d`, `maze3d_<preset>`, `memory_maze`, `memory_maze_<preset>` or `video_folder`."""
    if arg == "video_folder":
        return video_folder_defaults()
    if arg == "memory_maze":
        return memory_maze_defaults()
    if arg.startswith("memory_maze_"):
        return memory_maze_defaults(arg.removeprefix("memory_maze_"))
    if arg == "maze3d":
        return maze3d_defaults()
    if arg.startswith("maze3d_"):
        return maze3d_defaults(arg.removeprefix("maze3d_"))
    raise ValueError(
        f"unknown data config {arg!r}: use maze3d[_<preset>], memory_maze[_<preset>] or "
        "video_folder"
    )
