"""How frames become the model's history: fed back at the context-noise level.

    frames, level_BT = feed_back(rng, frames_BTHWC, config)             # at level c
    frames, level_BT = feed_back(rng, frames_BTHWC, config, level=1.0)  # pure noise

The one rule for every frame that enters a cache rather than being denoised: the sampler's
context and committed units, frames a rollout commits as history (ground truth, blind noise),
and the clean pass that builds a carried training state. They are fed at level c
(`config.context_noise`), noised to it (unchanged for c = 0), as clean-prefix training draws
the prefix's levels in [0, c]; so a carried training state is the state a rollout would hold.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lssvwm.diffusion.config import DiffusionConfig
from lssvwm.diffusion.schedules import NoiseSchedule


def feed_back(rng, frames_BTHWC, config: DiffusionConfig, level: float | None = None):
    """(frames as fed back, float32 [b, t, H, W, C]; their noise level [b, t]).

    `level`: a Python float in [0, 1] (None: `config.context_noise`); at 0 the frames are
    returned unnoised and `rng` is not used."""
    level = config.context_noise if level is None else level
    level_BT = jnp.full(frames_BTHWC.shape[:2], level, jnp.float32)
    frames = frames_BTHWC.astype(jnp.float32)
    if level > 0:
        alpha, sigma = NoiseSchedule.from_config(config).alpha_sigma(level)
        frames = alpha * frames + sigma * jax.random.normal(rng, frames.shape, jnp.float32)
    return frames, level_BT
