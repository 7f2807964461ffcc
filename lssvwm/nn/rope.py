"""Rotary position embedding (RoPE) over the frame index.

Every token of a frame shares its frame's angle, so attention logits between two tokens depend on
how many frames apart they are, never on where in the frame they sit (spatial position is the patch
embedding's job) or on the absolute frame index. Callers pass positions *relative* to the block
being computed (small integers), which keeps the angles exact in float32 however long the video.

Layout: `x [..., F, S, H, P]` (F frames, S tokens per frame, H heads, P head dim, P even) with
`positions [..., F]` matching x's leading axes by broadcasting. Dimension pairs are (i, i + P/2),
the "rotate half" convention.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def rope_inverse_frequencies(head_dim: int, base: float) -> np.ndarray:
    """[P/2] angular speeds base^(-2i/P), i = 0 .. P/2 - 1 (radians per frame)."""
    if head_dim % 2:
        raise ValueError(f"rotary embeddings need an even head_dim, got {head_dim}")
    if base <= 1.0:
        raise ValueError(f"rope base must be > 1, got {base}")
    exponents = np.arange(0, head_dim, 2, dtype=np.float64) / head_dim
    return (base**-exponents).astype(np.float32)


def apply_rope(x: jax.Array, positions, *, base: float) -> jax.Array:
    """Rotates `x [..., F, S, H, P]` by the frame `positions [..., F]`; returns x's dtype.

    Angles are computed in float32 from the (integer or float) positions. Rotating a query by
    position i and a key by position j makes their dot product a function of i - j only.
    """
    head_dim = x.shape[-1]
    inv_freq = rope_inverse_frequencies(head_dim, base)
    positions = jnp.asarray(positions, jnp.float32)
    angles = positions[..., None] * inv_freq  # [..., F, P/2]
    # Broadcast over the S (tokens) and H (heads) axes.
    cos = jnp.cos(angles)[..., None, None, :]
    sin = jnp.sin(angles)[..., None, None, :]
    x32 = x.astype(jnp.float32)
    first, second = jnp.split(x32, 2, axis=-1)
    rotated = jnp.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)
    return rotated.astype(x.dtype)
