"""A tiny deterministic episode dataset for testing the shared builder layer (not a test file)."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from lssvwm.data import tfds_common


@dataclasses.dataclass(frozen=True)
class ToySource:
    """Episode `index` of `split`: frames encode (split, episode, frame), random geometry."""

    length: int
    height: int = 4
    width: int = 5

    def __call__(self, split: str, index: int) -> dict[str, np.ndarray]:
        split_code = {"train": 0, "test": 1}[split]
        rng = np.random.default_rng([split_code, index])
        t = np.arange(self.length)
        frames = np.zeros((self.length, self.height, self.width, 3), np.uint8)
        frames[..., 0] = index
        frames[..., 1] = t[:, None, None] % 256
        frames[..., 2] = split_code
        c2w = np.tile(np.eye(4, dtype=np.float32), (self.length, 1, 1))
        c2w[:, :3, 3] = rng.normal(size=(self.length, 3))
        return {
            "frames": frames,
            "depth": rng.uniform(0.5, 4.0, (self.length, self.height, self.width)).astype(
                np.float32
            ),
            "camera_to_world": c2w,
            "intrinsics": np.array([[2, 0, 2.5], [0, 2, 2], [0, 0, 1]], np.float32),
            "actions": (t % 3).astype(np.int32),
            "position": np.stack([t, -t, t * 0.1], -1).astype(np.float32),
        }


class ToyEpisodes(tfds_common.EpisodeDatasetBuilder, skip_registration=True):
    """Toy episodes for tests."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [
        tfds_common.EpisodeBuilderConfig(
            name="default", params={"length": 12, "train": 5, "test": 2, "segment": 4}
        )
    ]

    def layout(self):
        return tfds_common.SegmentLayout(height=4, width=5, segment_length=self.params["segment"])

    def split_episodes(self):
        return {"train": self.params["train"], "test": self.params["test"]}

    def episode_source(self):
        return ToySource(length=self.params["length"])

    def episodes_per_shard(self):
        return 2

    def expected_episode_length(self):
        return self.params["length"]


# Test hooks for in-process builds (num_workers=0): fail at an episode, count generated ones.
FAIL_AT: int | None = None
GENERATED: list[tuple[str, int]] = []


@dataclasses.dataclass(frozen=True)
class FlakyToySource(ToySource):
    def __call__(self, split: str, index: int) -> dict[str, np.ndarray]:
        if FAIL_AT is not None and split == "train" and index >= FAIL_AT:
            raise RuntimeError(f"simulated crash at episode {index}")
        GENERATED.append((split, index))
        return super().__call__(split, index)


class FlakyToyEpisodes(ToyEpisodes, skip_registration=True):
    """ToyEpisodes whose source can be made to crash (for resume tests)."""

    def episode_source(self):
        return FlakyToySource(length=self.params["length"])


@dataclasses.dataclass(frozen=True)
class FailingToySource(ToySource):
    """Raises for train episode `fail_at` (picklable, so it fails inside pool workers too)."""

    fail_at: int = 3

    def __call__(self, split: str, index: int) -> dict[str, np.ndarray]:
        if split == "train" and index == self.fail_at:
            raise ValueError(f"episode {index} is broken")
        return super().__call__(split, index)


class FailingToyEpisodes(ToyEpisodes, skip_registration=True):
    def episode_source(self):
        return FailingToySource(length=self.params["length"])
