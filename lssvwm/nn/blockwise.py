"""Block-wise spatial scan: one Mamba-2 sequence (and one recurrent state) per spatial block.

Each frame's `hp x wp` token grid is cut into blocks of `bh x bw` tokens. Every block is scanned
as its own causal sequence over all frames, spatial-major / time-minor: token (t, i, j) of a block
(i, j inside the block) sits at sequence index `t * bh * bw + i * bw + j`. Blocks never interact
inside the SSM. `(bh, bw) = (hp, wp)` is the single full-frame scan; `(1, 1)` scans each position
through time on its own.

Blocks are folded into the batch: the sequences (and the recurrent state) have a leading axis of
size `b * nblocks`, batch-major, block index `block_row * (wp // bw) + block_col` minor. So a
state for batch b has `Mamba2State` leaves of leading size `b * nblocks`.

Calling with one frame at a time and the carried state reproduces the call over all frames.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lssvwm.nn.mamba2 import Mamba2Mixer, Mamba2State


def resolve_block_size(
    grid_hw: tuple[int, int], block_hw: tuple[int, int] | None
) -> tuple[int, int]:
    """Checks that `block_hw` tiles `grid_hw` (None = the full frame); returns (bh, bw)."""
    hp, wp = grid_hw
    if block_hw is None:
        return hp, wp
    if len(block_hw) != 2:
        raise ValueError(f"block size must be (bh, bw), got {block_hw!r}")
    bh, bw = (int(v) for v in block_hw)
    if bh < 1 or bw < 1 or hp % bh or wp % bw:
        raise ValueError(
            f"block size ({bh}, {bw}) does not divide the token grid ({hp}, {wp}): "
            "each side must be a positive divisor"
        )
    return bh, bw


def num_blocks(grid_hw: tuple[int, int], block_hw: tuple[int, int] | None) -> int:
    """Blocks per frame for `block_hw` on `grid_hw`."""
    bh, bw = resolve_block_size(grid_hw, block_hw)
    return (grid_hw[0] // bh) * (grid_hw[1] // bw)


def tokens_to_block_sequences(x_BTHWD: jax.Array, block_hw: tuple[int, int]) -> jax.Array:
    """[b, t, hp, wp, d] -> [b * nblocks, t * bh * bw, d] in block-scan order."""
    b, t, hp, wp, d = x_BTHWD.shape
    bh, bw = resolve_block_size((hp, wp), block_hw)
    nh, nw = hp // bh, wp // bw
    x = x_BTHWD.reshape(b, t, nh, bh, nw, bw, d)
    x = x.transpose(0, 2, 4, 1, 3, 5, 6)  # [b, nh, nw, t, bh, bw, d]
    return x.reshape(b * nh * nw, t * bh * bw, d)


def block_sequences_to_tokens(
    y_SLD: jax.Array, batch: int, frames: int, grid_hw: tuple[int, int], block_hw
) -> jax.Array:
    """Inverse of `tokens_to_block_sequences`: [b * nblocks, t*bh*bw, d] -> [b, t, hp, wp, d]."""
    hp, wp = grid_hw
    bh, bw = resolve_block_size(grid_hw, block_hw)
    nh, nw = hp // bh, wp // bw
    d = y_SLD.shape[-1]
    y = y_SLD.reshape(batch, nh, nw, frames, bh, bw, d)
    y = y.transpose(0, 3, 1, 4, 2, 5, 6)  # [b, t, nh, bh, nw, bw, d]
    return y.reshape(batch, frames, hp, wp, d)


def frame_reset_to_block_tokens(reset_BT: jax.Array, blocks: int, block_tokens: int) -> jax.Array:
    """[b, t] per-frame resets -> [b * blocks, t * block_tokens]: 1 on each frame's first token."""
    b, t = reset_BT.shape
    first_token = jnp.zeros((block_tokens,), reset_BT.dtype).at[0].set(1)
    reset_BTK = reset_BT[:, :, None] * first_token  # [b, t, block_tokens]
    reset_BNTK = jnp.broadcast_to(reset_BTK[:, None], (b, blocks, t, block_tokens))
    return reset_BNTK.reshape(b * blocks, t * block_tokens)


def frame_values_to_block_tokens(
    values_BTN: jax.Array, blocks: int, block_tokens: int
) -> jax.Array:
    """[b, t, n] per-frame values -> [b * blocks, t * block_tokens, n]: each frame's value on
    every one of its tokens, in block-scan order."""
    b, t, n = values_BTN.shape
    values = jnp.broadcast_to(values_BTN[:, None, :, None], (b, blocks, t, block_tokens, n))
    return values.reshape(b * blocks, t * block_tokens, n)


class BlockwiseMamba2(nnx.Module):
    """A Mamba-2 mixer scanned block-wise over `[b, t, hp, wp, d]` tokens.

    Args:
      d_model: token width.
      block_size: (bh, bw) dividing the token grid, or None for one full-frame scan.
      rngs: parameter randomness.
      **mixer_kwargs: forwarded to `Mamba2Mixer` (d_state, head_dim, expand, chunk_size, ...).
    """

    def __init__(
        self,
        d_model: int,
        block_size: tuple[int, int] | None,
        *,
        rngs: nnx.Rngs,
        **mixer_kwargs,
    ):
        self.block_size = None if block_size is None else tuple(int(v) for v in block_size)
        self.mixer = Mamba2Mixer(d_model, rngs=rngs, **mixer_kwargs)

    def init_state(self, batch_size: int, grid_hw: tuple[int, int]) -> Mamba2State:
        """Zero state for `batch_size` videos on a `grid_hw` token grid (leading b * nblocks)."""
        return self.mixer.init_state(batch_size * num_blocks(grid_hw, self.block_size))

    def __call__(
        self,
        x_BTHWD: jax.Array,
        state: Mamba2State | None = None,
        *,
        reset: jax.Array | None = None,
        pose_angles_BTN: jax.Array | None = None,
    ) -> tuple[jax.Array, Mamba2State]:
        """Scans every block over the given frames.

        Args:
          x_BTHWD: [b, t, hp, wp, d] tokens; t = 1 steps one frame.
          state: per-block state from the previous call (default: zero state).
          reset: optional [b, t] 0/1; 1 starts a new episode at that frame in every block.
          pose_angles_BTN: [b, t, n] the frames' pose angles, for a mixer with `pose_pairs`.

        Returns:
          y [b, t, hp, wp, d] and the per-block state after the last frame.
        """
        if x_BTHWD.ndim != 5:
            raise ValueError(f"tokens must be [b, t, hp, wp, d], got shape {x_BTHWD.shape}")
        b, t, hp, wp, _ = x_BTHWD.shape
        bh, bw = resolve_block_size((hp, wp), self.block_size)
        blocks = (hp // bh) * (wp // bw)
        if reset is not None:
            if reset.shape != (b, t):
                raise ValueError(f"reset must be per frame [b, t] = {(b, t)}, got {reset.shape}")
            reset = frame_reset_to_block_tokens(reset, blocks, bh * bw)
        x_SLD = tokens_to_block_sequences(x_BTHWD, (bh, bw))
        angles_SLN = None
        if pose_angles_BTN is not None:  # every token of a frame shares its frame's pose
            angles_SLN = frame_values_to_block_tokens(pose_angles_BTN, blocks, bh * bw)
        y_SLD, state = self.mixer(x_SLD, state, reset=reset, pose_angles_BLN=angles_SLN)
        return block_sequences_to_tokens(y_SLD, b, t, (hp, wp), (bh, bw)), state
