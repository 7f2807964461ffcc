"""Per-frame noise levels for diffusion forcing: every frame (or every chunk) its own level.

    t_BT = sample_noise_levels(rng, (b, t), config, chunk=c)     levels in (0, 1]

Independent per frame (chunk = 1), or chunk-synchronous: frames [m c, (m + 1) c) of a sample
share one level, matching the chunked attention window (bidirectional within a chunk) and the
sampler, which denoises a chunk at a time. The distribution of a level (`noise_distribution`):

  uniform        t ~ U(0, 1]
  logit_normal   t = sigmoid(mean + std n), n ~ N(0, 1); mean > 0 skews toward high noise
  power          t = u^(1/k), u ~ U(0, 1]: density k t^(k-1); k > 1 skews toward high noise

Levels are strictly positive: t = 0 means "clean" (a clean-prefix or committed frame).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lssvwm.diffusion.config import DiffusionConfig

_T_MIN = 1e-6  # a noisy frame's lowest level (logit-normal draws can round to 0 in float32)


def sample_levels(rng: jax.Array, shape: tuple[int, ...], config: DiffusionConfig) -> jax.Array:
    """i.i.d. levels in (0, 1] of the configured distribution (float32, `shape`)."""
    if config.noise_distribution == "logit_normal":
        n = jax.random.normal(rng, shape, jnp.float32)
        t = jax.nn.sigmoid(config.noise_logit_mean + config.noise_logit_std * n)
    else:
        u = 1.0 - jax.random.uniform(rng, shape, jnp.float32)  # (0, 1]
        t = u if config.noise_distribution == "uniform" else u ** (1.0 / config.noise_power)
    return jnp.clip(t, _T_MIN, 1.0)


def repeat_per_chunk(per_chunk_BM: jax.Array, frames: int, chunk: int) -> jax.Array:
    """[b, ceil(t / c)] -> [b, t]: each chunk's value on its c frames (last chunk may be cut)."""
    return jnp.repeat(per_chunk_BM, chunk, axis=1)[:, :frames]


def sample_noise_levels(
    rng: jax.Array, shape_BT: tuple[int, int], config: DiffusionConfig, *, chunk: int = 1
) -> jax.Array:
    """Training levels [b, t]: independent per frame, or per chunk of `chunk` frames when
    `config.chunk_synchronous` and chunk > 1."""
    batch, frames = shape_BT
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1 frames, got {chunk}")
    if chunk == 1 or not config.chunk_synchronous:
        return sample_levels(rng, (batch, frames), config)
    per_chunk = sample_levels(rng, (batch, -(-frames // chunk)), config)
    return repeat_per_chunk(per_chunk, frames, chunk)
