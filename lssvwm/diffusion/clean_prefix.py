"""Long-context training: a clean prefix as a per-frame mask with static shapes.

With probability p (`clean_prefix_prob`, paper 0.5) a sample keeps its first L frames clean,
L drawn uniformly from the allowed lengths:

    L > min_fraction * T        (paper: longer than half the window)
    L a multiple of the chunk c (the model's unit: a chunk is all clean or all noisy)
    L <= T - c                  (at least one noisy unit, so the sample has a loss)

The mask is `arange(T) < L`, so the shapes never depend on L (one compile for all draws). The
clean frames get noise level 0 -- or, when the sampler feeds its context back at a small noise
level c, a level uniform in [0, c] -- and carry no loss; the rest get independent per-frame (or
per-chunk) levels as in plain diffusion forcing -- or, for a `blind_suffix_prob` share of the
samples with a prefix, level 1 (pure noise): the frames after the prefix must come from the
prefix and the actions alone.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lssvwm.diffusion.config import DiffusionConfig
from lssvwm.diffusion.noise_levels import repeat_per_chunk, sample_noise_levels


def allowed_prefix_lengths(frames: int, min_fraction: float, chunk: int = 1) -> np.ndarray:
    """The prefix lengths a sample may draw (int array, ascending); static, from Python ints."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1 frames, got {chunk}")
    if frames % chunk:
        raise ValueError(
            f"a training window of {frames} frames is not a whole number of chunks of {chunk} "
            "(clean prefixes must be aligned to chunks)"
        )
    lengths = np.arange(chunk, frames, chunk)  # whole chunks, at least one noisy chunk left
    lengths = lengths[lengths > min_fraction * frames]
    if lengths.size == 0:
        raise ValueError(
            f"no clean-prefix length fits a window of {frames} frames: it must be longer than "
            f"{min_fraction} of the window, a multiple of the chunk ({chunk}) and leave at "
            "least one noisy chunk; lengthen the window or lower clean_prefix_min_fraction"
        )
    return lengths


def sample_clean_prefix(
    rng: jax.Array,
    batch: int,
    frames: int,
    *,
    prob: float,
    min_fraction: float,
    chunk: int = 1,
) -> tuple[jax.Array, jax.Array]:
    """(clean_BT bool [b, t], length_B int32 [b]): the first length_B frames of each sample are
    clean; length 0 (no prefix) with probability 1 - prob."""
    if prob <= 0.0:
        return jnp.zeros((batch, frames), bool), jnp.zeros((batch,), jnp.int32)
    lengths = jnp.asarray(allowed_prefix_lengths(frames, min_fraction, chunk), jnp.int32)
    rng_has, rng_length = jax.random.split(rng)
    has_prefix_B = jax.random.bernoulli(rng_has, prob, (batch,))
    index_B = jax.random.randint(rng_length, (batch,), 0, lengths.shape[0])
    length_B = jnp.where(has_prefix_B, lengths[index_B], 0)
    clean_BT = jnp.arange(frames)[None, :] < length_B[:, None]
    return clean_BT, length_B


def context_levels(
    rng: jax.Array, shape_BT: tuple[int, int], context_noise: float, *, chunk: int = 1
) -> jax.Array:
    """Levels of clean-prefix frames [b, t]: 0, or uniform in [0, c] for context noise c > 0
    (per chunk, so a committed chunk's shared level is matched)."""
    batch, frames = shape_BT
    if context_noise <= 0.0:
        return jnp.zeros(shape_BT, jnp.float32)
    per_chunk = jax.random.uniform(rng, (batch, -(-frames // chunk)), jnp.float32)
    return context_noise * repeat_per_chunk(per_chunk, frames, chunk)


def training_noise_levels(
    rng: jax.Array, shape_BT: tuple[int, int], config: DiffusionConfig, *, chunk: int = 1
) -> tuple[jax.Array, jax.Array]:
    """(noise_level_BT float32, clean_BT bool): diffusion-forcing levels with the clean prefix.

    `chunk` is the model's unit (`model.unit`): prefixes are aligned to it and, with
    `config.chunk_synchronous`, the noisy frames of a chunk share one level.
    """
    batch, frames = shape_BT
    rng_prefix, rng_levels, rng_context = jax.random.split(rng, 3)
    clean_BT, length_B = sample_clean_prefix(
        rng_prefix,
        batch,
        frames,
        prob=config.clean_prefix_prob,
        min_fraction=config.clean_prefix_min_fraction,
        chunk=chunk,
    )
    noisy_levels = sample_noise_levels(rng_levels, shape_BT, config, chunk=chunk)
    clean_levels = context_levels(rng_context, shape_BT, config.context_noise, chunk=chunk)
    if config.blind_suffix_prob > 0.0:
        rng_blind = jax.random.fold_in(rng, 1)  # a stream of its own: the others stay as they were
        blind_B = jax.random.bernoulli(rng_blind, config.blind_suffix_prob, (batch,))
        blind_B = blind_B & (length_B > 0)
        noisy_levels = jnp.where(blind_B[:, None], 1.0, noisy_levels)
    return jnp.where(clean_BT, clean_levels, noisy_levels), clean_BT
