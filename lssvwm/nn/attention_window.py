"""Which frames a query frame may attend to: sliding window, chunked window, or full causal.

`FrameWindow` is the single definition of visibility used by the blocked kernel, the streaming
step and the dense reference, so they cannot drift apart. Positions are frame indices in any common
frame of reference (only differences matter, plus chunk membership, which is counted from the
call's frame 0).
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class FrameWindow:
    """Frame-level attention pattern.

    frames: k, the window length in frames; None for full causal attention.
    chunk: 1 for the exact sliding window (a query of frame i sees frames i-k .. i); c > 1 for the
      chunked form (frames grouped in chunks of c; a query in chunk m sees chunks
      m - (k/c - 1) .. m, bidirectionally inside its own chunk).
    """

    frames: int | None
    chunk: int = 1

    def __post_init__(self):
        if self.frames is None:
            if self.chunk != 1:
                raise ValueError("full causal attention (window=None) takes no chunk_size")
            return
        if not isinstance(self.frames, int | np.integer) or self.frames < 0:
            raise ValueError(f"attention window must be an int >= 0 frames, got {self.frames!r}")
        if not isinstance(self.chunk, int | np.integer) or self.chunk < 1:
            raise ValueError(f"chunk_size must be an int >= 1, got {self.chunk!r}")
        if self.chunk > 1 and (self.frames < self.chunk or self.frames % self.chunk):
            raise ValueError(
                f"chunk_size={self.chunk} must divide the attention window of {self.frames} frames "
                "(the window is a whole number of chunks, the query's own chunk included)"
            )

    @classmethod
    def make(
        cls, window: int | None, chunk_size: int | None = None, max_frames: int | None = None
    ) -> FrameWindow:
        """Validated window from layer arguments; `max_frames` is the training window length."""
        spec = cls(window, 1 if chunk_size is None else chunk_size)
        if max_frames is not None:
            if max_frames < 1:
                raise ValueError(f"max_frames must be >= 1, got {max_frames}")
            if window is not None and window > max_frames:
                raise ValueError(
                    f"attention window of {window} frames is longer than the training window "
                    f"max_frames={max_frames}"
                )
        return spec

    @property
    def is_full(self) -> bool:
        return self.frames is None

    @property
    def is_chunked(self) -> bool:
        return self.chunk > 1

    @property
    def unit(self) -> int:
        """Frames per streaming step: one frame, or one chunk in the chunked form."""
        return self.chunk

    @property
    def lookback(self) -> int | None:
        """Frames before the start of a unit that some query of the unit may see (None: all)."""
        if self.frames is None:
            return None
        # Sliding: frames i-k .. i-1 of the first query i. Chunked: the k/c - 1 previous chunks.
        return self.frames if self.chunk == 1 else self.frames - self.chunk

    def visible(self, query_frame, key_frame):
        """Boolean array (numpy or jax, broadcasting): may `query_frame` attend to `key_frame`?

        Chunk membership uses floor division, so negative positions (frames before the call's
        frame 0, i.e. from the cache) fall in negative chunks as they should.
        """
        if self.frames is None:
            return key_frame <= query_frame
        if self.chunk == 1:
            distance = query_frame - key_frame
            return (distance >= 0) & (distance <= self.frames)
        chunk_distance = query_frame // self.chunk - key_frame // self.chunk
        return (chunk_distance >= 0) & (chunk_distance <= self.frames // self.chunk - 1)
