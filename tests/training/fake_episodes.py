"""An in-memory `SegmentSource` stand-in whose frames say where they come from.

Frame f of stored episode e has every pixel of channel 0 = e, channel 1 = f % 256, channel 2 =
f // 256, and action f % 5, so a window read through the data pipeline can be checked against
the (episode, start) it claims without building a TFDS dataset.
"""

from __future__ import annotations

import numpy as np

from lssvwm.data.sources import EpisodeIndex


class FakeSource:
    """`episodes` equal-length episodes of `segments` x `segment_length` frames of h x w."""

    fields = ("frames", "actions")

    def __init__(self, episodes=5, segments=4, segment_length=4, hw=(2, 2)):
        num_segments = np.full((episodes,), segments, np.int64)
        self.index = EpisodeIndex(
            episode_ids=np.arange(episodes, dtype=np.int64) + 100,
            num_segments=num_segments,
            first_record=np.arange(episodes, dtype=np.int64) * segments,
            segment_length=segment_length,
        )
        self.hw = hw

    def __getitems__(self, records):
        return [self._record(int(r)) for r in records]

    def _record(self, record):
        segments = int(self.index.num_segments[0])
        episode, segment = divmod(record, segments)
        size = self.index.segment_length
        frames = np.arange(segment * size, (segment + 1) * size)
        pixels = np.zeros((size, *self.hw, 3), np.uint8)
        pixels[..., 0] = episode
        pixels[..., 1] = (frames % 256)[:, None, None]
        pixels[..., 2] = (frames // 256)[:, None, None]
        return {"frames": pixels, "actions": (frames % 5).astype(np.int32)}


def decode(window_frames):
    """(stored episode, frame index [W]) of one window's frames [W, h, w, 3]."""
    episode = int(window_frames[0, 0, 0, 0])
    frames = window_frames[:, 0, 0, 1].astype(int) + 256 * window_frames[:, 0, 0, 2].astype(int)
    return episode, frames
