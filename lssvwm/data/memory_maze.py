"""The `memory_maze` TFDS dataset: Memory Maze episodes with depth, pose and intrinsics.

Episodes are recorded from DeepMind's Memory Maze (MuJoCo, off-screen on the CPU) by
`lssvwm.data.memory_maze_env` with the exploring policy of `lssvwm.data.memory_maze_policy`,
and stored by the shared episode layer (`lssvwm.data.tfds_common`): fixed-length segment records
in `array_record` files, built in parallel processes, resumable, with a progress bar. Needs the
optional extra `pip install 'lssvwm[memory-maze]'` to *build*; reading needs only TFDS.

    builder = MemoryMaze(config="tiny", data_dir=DIR)       # or MemoryMaze.from_config(data)
    builder.download_and_prepare()
    source = tfds.data_source("memory_maze/tiny", data_dir=DIR)["train"]   # no TensorFlow

Generation parameters (`data.memory_maze` in a config; missing keys take DEFAULT_PARAMS):
  maze_size        9, 11, 13 or 15 (Memory Maze's tasks)
  image_size       frame side in pixels (64)
  episode_length   frames per episode, a multiple of segment_length
  segment_length   frames per stored record
  train_episodes, test_episodes
  seed             base seed; episode i of a split is deterministic in (seed, split, i)
  explorer         dict of `ExplorerConfig` overrides ({} for the defaults)

Recording speed here (2 shared CPU cores): ~70-130 environment steps per second per process,
plus ~4 s per episode to build and reset the environment.

Public API:
  MemoryMaze                 the TFDS builder (configs "tiny", "9x9", "15x15", or any params)
  MemoryMazeSource           picklable (split, index) -> episode
  DEFAULT_PARAMS
  and from memory_maze_env / memory_maze_policy: MemoryMazeConfig, record_episode,
  make_environment, ExplorerConfig, ExplorerPolicy
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from lssvwm.config_schema import check_known_keys
from lssvwm.data import tfds_common
from lssvwm.data.memory_maze_env import (
    MAZE_SIZES,
    MemoryMazeConfig,
    make_environment,
    record_episode,
)
from lssvwm.data.memory_maze_policy import ExplorerConfig, ExplorerPolicy

__all__ = [
    "DEFAULT_PARAMS",
    "ExplorerConfig",
    "ExplorerPolicy",
    "MAZE_SIZES",
    "MemoryMaze",
    "MemoryMazeConfig",
    "MemoryMazeSource",
    "make_environment",
    "record_episode",
]

DEFAULT_PARAMS: dict[str, Any] = {
    "maze_size": 9,
    "image_size": 64,
    "episode_length": 1024,
    "segment_length": 64,
    "train_episodes": 200,
    "test_episodes": 20,
    "seed": 0,
    "explorer": {},
}


def _complete_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """DEFAULT_PARAMS overridden by `params`, checked; canonical JSON values."""
    check_known_keys("data.memory_maze", params, DEFAULT_PARAMS)
    full = json.loads(json.dumps({**DEFAULT_PARAMS, **params}, sort_keys=True))
    explorer_fields = [f.name for f in dataclasses.fields(ExplorerConfig)]
    check_known_keys("data.memory_maze.explorer", full["explorer"], explorer_fields)
    for name in ("episode_length", "segment_length", "train_episodes", "test_episodes"):
        if not isinstance(full[name], int) or full[name] < 1:
            raise ValueError(f"memory_maze {name} must be a positive integer, got {full[name]}")
    if full["episode_length"] % full["segment_length"]:
        raise ValueError(
            f"memory_maze episode_length {full['episode_length']} must be a multiple of "
            f"segment_length {full['segment_length']}"
        )
    _recording_config(full)  # validates maze_size, image_size, seed and explorer values
    return full


def _recording_config(params: Mapping[str, Any]) -> MemoryMazeConfig:
    return MemoryMazeConfig(
        maze_size=params["maze_size"],
        image_size=params["image_size"],
        episode_length=params["episode_length"],
        seed=params["seed"],
        explorer=ExplorerConfig(**params["explorer"]),
    )


@dataclasses.dataclass(frozen=True)
class MemoryMazeSource:
    """Records episode `index` of `split` (picklable, so it runs in builder worker processes)."""

    config: MemoryMazeConfig

    def __call__(self, split: str, index: int) -> dict[str, np.ndarray]:
        return record_episode(self.config, index, split=split)


def _preset(name: str, **overrides: Any) -> tfds_common.EpisodeBuilderConfig:
    return tfds_common.EpisodeBuilderConfig(name=name, params=_complete_params(overrides))


class MemoryMaze(tfds_common.EpisodeDatasetBuilder):
    """Memory Maze (DeepMind, MuJoCo) first-person episodes from an exploring policy.

    Fields per record (T = segment_length): frames uint8 [T,H,W,3], depth float32 [T,H,W]
    (camera-frame z in metres, +inf for sky), camera_to_world float32 [T,4,4] (OpenCV axes),
    intrinsics float32 [3,3], actions int32 [T] (Memory Maze's 6 discrete actions),
    position float32 [T,3] (x m, y m, heading rad), episode_id, segment_index.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        _preset("tiny", episode_length=128, train_episodes=2, test_episodes=1),
        _preset("9x9"),
        _preset("15x15", maze_size=15, episode_length=4096, train_episodes=100, test_episodes=10),
    ]
    DEFAULT_CONFIG_NAME = "9x9"

    # TFDS resolves the builder's source file through `importlib_resources` for builders that
    # live in a package, a module it does not declare as a dependency (and that is not
    # installed here); the plain file path is all it needs (for an optional checksums file).
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        return epath.Path(inspect.getfile(cls))

    @classmethod
    def params_from_config(cls, data_config) -> dict:
        return _complete_params(super().params_from_config(data_config))

    @classmethod
    def builder_config_for(cls, params: Mapping[str, Any]) -> tfds_common.EpisodeBuilderConfig:
        return super().builder_config_for(_complete_params(params))

    def recording_config(self) -> MemoryMazeConfig:
        return _recording_config(_complete_params(self.params))

    def layout(self) -> tfds_common.SegmentLayout:
        size = self.params["image_size"]
        return tfds_common.SegmentLayout(
            height=size, width=size, segment_length=self.params["segment_length"]
        )

    def split_episodes(self) -> dict[str, int]:
        return {"train": self.params["train_episodes"], "test": self.params["test_episodes"]}

    def episode_source(self) -> MemoryMazeSource:
        return MemoryMazeSource(self.recording_config())

    def expected_episode_length(self) -> int:
        return self.params["episode_length"]

    def description(self) -> str:
        return (self.__doc__ or "") + "\nParameters: " + json.dumps(self.params, sort_keys=True)
