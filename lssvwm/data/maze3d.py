"""maze3d: the built-in procedural first-person maze dataset (TFDS builder `maze3d`).

Each episode is a new random maze (`maze_grid`) explored by the policy of `maze_explorer` and
rendered by `maze_render`, with exact depth, camera pose and intrinsics (ARCHITECTURE.md,
"Datasets" and "Camera in maze3d"). Generation is deterministic in (seed, split, episode index)
and needs no download; a 64 x 64 dataset builds at thousands of frames per second.

Splits:
  train       `train_episodes` explorer episodes of `episode_length` frames.
  test        `test_episodes` more, from other seeds: held-out loss and the retrieval task
              (`lssvwm.data.eval_tasks.retrieval_task` slices them).
  reasoning   `reasoning_episodes` episodes of `reasoning_context + reasoning_horizon` frames
              (rounded up to whole segments): free exploration for `reasoning_context` frames,
              then only paths through places already visited (`eval_tasks.reasoning_task`).
A split with 0 episodes is left out.

Public API: Maze3dParams, Maze3dSource, generate_episode(params, split, index), Maze3d
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from lssvwm.config_schema import check_known_keys
from lssvwm.data import maze_explorer, maze_grid, maze_render, tfds_common

SPLIT_CODES = {"train": 0, "test": 1, "reasoning": 2}


@dataclasses.dataclass(frozen=True)
class Maze3dParams:
    """Generation parameters of a maze3d dataset (the `data.maze3d` config section)."""

    # Images and camera.
    height: int = 64
    width: int = 64
    fov_degrees: float = 90.0
    eye_height: float = 0.4  # below mid-height: a flipped vertical axis cannot go unnoticed
    # Maze.
    maze_rows: int = 9
    maze_cols: int = 9
    num_colors: int = 16
    num_patterns: int = 6
    num_landmarks: int = 4
    extra_openings: float = 0.15
    wall_height: float = 1.0
    # Explorer.
    steps_per_block: int = 4
    turns_per_circle: int = 24
    retrace_fraction: float = 0.2
    retrace_min: int = 8
    retrace_max: int = 96
    noop_probability: float = 0.02
    # Dataset size and layout.
    episode_length: int = 1024
    segment_length: int = 64
    train_episodes: int = 128
    test_episodes: int = 16
    reasoning_episodes: int = 16
    reasoning_context: int = 576
    reasoning_horizon: int = 224
    episodes_per_shard: int = 4
    seed: int = 0

    def __post_init__(self):
        if self.episode_length % self.segment_length:
            raise ValueError(
                f"episode_length {self.episode_length} must be a multiple of segment_length "
                f"{self.segment_length} (records hold whole segments)"
            )
        if min(self.height, self.width, self.episode_length, self.episodes_per_shard) < 1:
            raise ValueError(f"sizes must be positive: {self}")
        if min(self.train_episodes, self.test_episodes, self.reasoning_episodes) < 0:
            raise ValueError("episode counts must be >= 0")
        if self.train_episodes < 1:
            raise ValueError("train_episodes must be >= 1")
        if not 0 < self.eye_height < self.wall_height:
            raise ValueError(f"eye_height must lie in (0, wall_height = {self.wall_height})")
        if self.reasoning_episodes and self.reasoning_context < 2:
            raise ValueError("reasoning_context must be >= 2")
        self.explorer()  # validates the explorer fields

    @classmethod
    def from_dict(cls, params: Mapping[str, Any]) -> Maze3dParams:
        check_known_keys("data.maze3d", params, [f.name for f in dataclasses.fields(cls)])
        return cls(**params)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def camera(self) -> maze_render.Camera:
        return maze_render.Camera(
            height=self.height,
            width=self.width,
            fov_degrees=self.fov_degrees,
            eye_height=self.eye_height,
        )

    def explorer(self) -> maze_explorer.ExplorerConfig:
        return maze_explorer.ExplorerConfig(
            steps_per_block=self.steps_per_block,
            turns_per_circle=self.turns_per_circle,
            retrace_fraction=self.retrace_fraction,
            retrace_min=self.retrace_min,
            retrace_max=self.retrace_max,
            noop_probability=self.noop_probability,
        )

    def world_size(self) -> tuple[float, float]:
        """(x, y) extent of the maze in metres: positions lie in [0, x) x [0, y)."""
        return (2.0 * self.maze_cols + 1, 2.0 * self.maze_rows + 1)

    def reasoning_length(self) -> int:
        """Frames per reasoning episode: context + horizon rounded up to whole segments."""
        total = self.reasoning_context + self.reasoning_horizon
        return -(-total // self.segment_length) * self.segment_length

    def split_episodes(self) -> dict[str, int]:
        counts = {
            "train": self.train_episodes,
            "test": self.test_episodes,
            "reasoning": self.reasoning_episodes,
        }
        return {split: n for split, n in counts.items() if n > 0}


def make_maze(params: Maze3dParams, rng: np.random.Generator) -> maze_grid.Maze:
    return maze_grid.generate_maze(
        rng,
        rows=params.maze_rows,
        cols=params.maze_cols,
        num_colors=params.num_colors,
        num_patterns=params.num_patterns,
        num_landmarks=params.num_landmarks,
        extra_openings=params.extra_openings,
        wall_height=params.wall_height,
    )


def episode_rng(params: Maze3dParams, split: str, index: int) -> np.random.Generator:
    if split not in SPLIT_CODES:
        raise ValueError(f"unknown maze3d split {split!r}; known: {sorted(SPLIT_CODES)}")
    return np.random.default_rng(np.random.SeedSequence([params.seed, SPLIT_CODES[split], index]))


def generate_episode(
    params: Maze3dParams, split: str, index: int, *, with_maze: bool = False
) -> dict[str, np.ndarray] | tuple[dict[str, np.ndarray], maze_grid.Maze]:
    """Episode `index` of `split` (an episode dict, see `lssvwm.data.episodes`).

    With `with_maze`, also returns the maze (for pictures and geometry tests).
    """
    rng = episode_rng(params, split, index)
    maze = make_maze(params, rng)
    if split == "reasoning":
        length, revisit_after = params.reasoning_length(), params.reasoning_context
    else:
        length, revisit_after = params.episode_length, None
    trajectory = maze_explorer.explore(
        maze, rng, length, params.explorer(), revisit_after=revisit_after
    )
    camera = params.camera()
    frames, depth = maze_render.render(maze, trajectory.position, camera)
    episode = {
        "frames": frames,
        "depth": depth,
        "camera_to_world": maze_render.camera_to_world(trajectory.position, camera.eye_height),
        "intrinsics": camera.intrinsics(),
        "actions": trajectory.actions,
        "position": trajectory.position,
    }
    return (episode, maze) if with_maze else episode


@dataclasses.dataclass(frozen=True)
class Maze3dSource:
    """Picklable `(split, index) -> episode` for the builder's worker processes."""

    params: Maze3dParams

    def __call__(self, split: str, index: int) -> dict[str, np.ndarray]:
        return generate_episode(self.params, split, index)


def _preset(name: str, description: str, **overrides: Any) -> tfds_common.EpisodeBuilderConfig:
    params = Maze3dParams(**overrides).to_dict()
    return tfds_common.EpisodeBuilderConfig(name=name, description=description, params=params)


_SMALL = dict(
    height=32,
    width=32,
    maze_rows=5,
    maze_cols=5,
    num_colors=8,
    num_landmarks=3,
    episode_length=512,
    train_episodes=64,
    test_episodes=8,
    reasoning_episodes=8,
    reasoning_context=192,
    reasoning_horizon=64,
    episodes_per_shard=8,
)
_QUICKSTART = dict(_SMALL, steps_per_block=2, turns_per_circle=12)
_QUICKSTART_TINY = dict(
    _QUICKSTART,
    height=16,
    width=16,
    episode_length=64,
    segment_length=32,
    train_episodes=2,
    test_episodes=2,
    reasoning_episodes=0,
    episodes_per_shard=2,
)


class Maze3d(tfds_common.EpisodeDatasetBuilder):
    """Procedural first-person maze episodes with exact depth, pose and intrinsics.

    Fields per record (T = segment_length): frames uint8 [T,H,W,3], depth float32 [T,H,W]
    (camera-frame z in metres; the maze has a ceiling, so no +inf), camera_to_world float32
    [T,4,4] (OpenCV axes), intrinsics float32 [3,3], actions int32 [T] (see
    `lssvwm.data.maze_explorer`), position float32 [T,3] (x m, y m, heading rad),
    episode_id, segment_index.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        _preset("default", "64x64 frames, 9x9-cell mazes, 16 colours, 1024-frame episodes."),
        _preset(
            "small",
            "32x32 frames, 5x5-cell mazes, 8 colours, 512-frame episodes (CPU quickstart).",
            **_SMALL,
        ),
        # The data of configs/quickstart.py (configs/base.py) and the maze3d family, named so
        # that it lives under maze3d/quickstart rather than a hash (tests/data check the match).
        _preset(
            "quickstart",
            "small with twice the motion per frame (half-metre steps, 30-degree turns).",
            **_QUICKSTART,
        ),
        _preset(
            "quickstart_tiny",
            "quickstart shrunk for smoke runs: 16x16 frames, 2 + 2 episodes of 64 frames.",
            **_QUICKSTART_TINY,
        ),
    ]
    DEFAULT_CONFIG_NAME = "default"

    @classmethod
    def params_from_config(cls, data_config) -> dict:
        """The `data.maze3d` section, completed with defaults and validated."""
        section = super().params_from_config(data_config)
        return Maze3dParams.from_dict(section).to_dict()

    @classmethod
    def builder_config_for(cls, params: Mapping[str, Any]) -> tfds_common.EpisodeBuilderConfig:
        return super().builder_config_for(Maze3dParams.from_dict(params).to_dict())

    def maze3d_params(self) -> Maze3dParams:
        return Maze3dParams.from_dict(self.params)

    def layout(self) -> tfds_common.SegmentLayout:
        params = self.maze3d_params()
        return tfds_common.SegmentLayout(
            height=params.height, width=params.width, segment_length=params.segment_length
        )

    def split_episodes(self) -> dict[str, int]:
        return self.maze3d_params().split_episodes()

    def episode_source(self) -> Maze3dSource:
        return Maze3dSource(self.maze3d_params())

    def episodes_per_shard(self) -> int:
        return self.maze3d_params().episodes_per_shard

    def expected_total_frames(self) -> int:
        params = self.maze3d_params()
        counts = self.split_episodes()
        return params.episode_length * (
            counts.get("train", 0) + counts.get("test", 0)
        ) + params.reasoning_length() * counts.get("reasoning", 0)
