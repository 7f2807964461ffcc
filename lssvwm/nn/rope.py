"""Rotary position embedding (RoPE) over the frame index.

Every token of a frame shares its frame's angle, so attention logits between two tokens depend on
how many frames apart they are, never on where in the frame they sit (spatial position is the patch
embedding's job) or on the absolute frame index. Callers pass positions *relative* to the block
being computed (small integers), which keeps the angles exact in float32 however long the video.

Layout: `x [..., F, S, H, P]` (F frames, S tokens per frame, H heads, P head dim, P even) with
`positions [..., F]` matching x's leading axes by broadcasting. Dimension pairs are (i, i + P/2),
the "rotate half" convention.

Pose rotation (`pose_rope_frequencies` = m in the model config): the last 3m pairs are rotated not
by the frame index but by the camera pose the frame was taken at -- m angular frequencies each
for x and y and m heading harmonics (`pose_angles`). A query rotated by its pose and a key by
theirs have a dot product that, on those pairs, is a function of the pose *difference* only: a
head whose query and key are constant on them scores a key highest when it was taken where the
query is, with no need to learn pose matching through the conditioning. This is how an attention
model can look a place up (as PRoPE / GTA do with cameras). The rotation is applied once, to q
and k as they are projected (so cached keys hold it, and streaming needs no poses later); the
frame-index rotation then covers the first P/2 - 3m pairs only (`pairs`), so the two never mix.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def rope_inverse_frequencies(head_dim: int, base: float, pairs: int | None = None) -> np.ndarray:
    """[P/2] angular speeds base^(-2i/P), i = 0 .. P/2 - 1 (radians per frame); pairs from
    `pairs` on (the pose pairs) get 0."""
    if head_dim % 2:
        raise ValueError(f"rotary embeddings need an even head_dim, got {head_dim}")
    if base <= 1.0:
        raise ValueError(f"rope base must be > 1, got {base}")
    exponents = np.arange(0, head_dim, 2, dtype=np.float64) / head_dim
    frequencies = base**-exponents
    if pairs is not None:
        frequencies[pairs:] = 0.0
    return frequencies.astype(np.float32)


def _rotate(x: jax.Array, angles: jax.Array) -> jax.Array:
    """Rotates the pairs (i, i + P/2) of `x [..., F, S, H, P]` by `angles [..., F, P/2]`."""
    cos = jnp.cos(angles)[..., None, None, :]  # broadcast over the S (tokens) and H (heads) axes
    sin = jnp.sin(angles)[..., None, None, :]
    x32 = x.astype(jnp.float32)
    first, second = jnp.split(x32, 2, axis=-1)
    rotated = jnp.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)
    return rotated.astype(x.dtype)


def apply_rope(x: jax.Array, positions, *, base: float, pairs: int | None = None) -> jax.Array:
    """Rotates `x [..., F, S, H, P]` by the frame `positions [..., F]`; returns x's dtype.

    Angles are computed in float32 from the (integer or float) positions. Rotating a query by
    position i and a key by position j makes their dot product a function of i - j only. With
    `pairs`, only the first `pairs` dimension pairs turn (the others hold the pose rotation).
    """
    inv_freq = rope_inverse_frequencies(x.shape[-1], base, pairs)
    positions = jnp.asarray(positions, jnp.float32)
    return _rotate(x, positions[..., None] * inv_freq)  # angles [..., F, P/2]


def pose_angles(
    poses_BT3: jax.Array, frequencies: int, *, pose_scale: float, step_scale: float
) -> jax.Array:
    """Rotation angles [b, t, 3m] of the pose pairs, m = `frequencies`: x and y at m angular
    speeds geometric from pi / pose_scale (half a turn across the scene: unambiguous) to
    pi / step_scale (half a turn per step: a neighbouring place scores lowest), and the heading
    harmonics 1, 2, 4, ... 2^(m-1)."""
    if frequencies < 1:
        raise ValueError(f"pose rotation needs frequencies >= 1, got {frequencies}")
    ratio = pose_scale / step_scale
    exponents = np.arange(frequencies) / max(frequencies - 1, 1)
    speeds = jnp.asarray(np.pi / pose_scale * ratio**exponents, jnp.float32)  # [m]
    harmonics = jnp.asarray(2.0 ** np.arange(frequencies), jnp.float32)
    poses = poses_BT3.astype(jnp.float32)
    return jnp.concatenate(
        [
            poses[..., 0:1] * speeds,
            poses[..., 1:2] * speeds,
            poses[..., 2:3] * harmonics,
        ],
        axis=-1,
    )


def apply_pose_rotation(x: jax.Array, angles_BTN: jax.Array) -> jax.Array:
    """Rotates the last N pairs of `x [b, t, S, H, P]` by `angles_BTN [b, t, N]` (pose_angles);
    the first P/2 - N pairs are left for the frame-index rotation."""
    half = x.shape[-1] // 2
    n = angles_BTN.shape[-1]
    if n > half:
        raise ValueError(f"{n} pose pairs do not fit a head of {x.shape[-1]} dimensions")
    zeros = jnp.zeros(angles_BTN.shape[:-1] + (half - n,), jnp.float32)
    return _rotate(x, jnp.concatenate([zeros, angles_BTN.astype(jnp.float32)], axis=-1))
