"""Sample videos: the model's autoregressive continuation of held-out windows beside the truth.

    movie = sample_movie(model, diffusion_config, windows, context_frames, rng)
    write_gif(movie, path)      # lssvwm.common.video; the trainer writes on process 0 only

`windows` holds the episode fields of b held-out windows ([b, t, ...]: frames, the conditioning
field, and depth/poses for the spatial-memory model; `lssvwm.models.inputs` makes the inputs).

The first `context_frames` frames prefill the sampler's cache; the rest are generated unit by
unit (`lssvwm.diffusion.Sampler`, DDIM) with the true actions. Each GIF frame shows, per window
(one row each), the model's frame on the left and the true frame on the right; context frames
show the truth on both sides and a white bar on top, generated frames a red bar
(`lssvwm.common.video.side_by_side`).
"""

from __future__ import annotations

import jax
import numpy as np

from lssvwm.common.frames import model_range_to_uint8
from lssvwm.common.video import side_by_side
from lssvwm.diffusion import DiffusionConfig, Sampler
from lssvwm.models.inputs import model_actions, model_frames, rgb_of


def sample_movie(
    model,
    diffusion_config: DiffusionConfig,
    windows: dict,
    context_frames: int,
    rng: jax.Array,
    *,
    scale: int = 4,
) -> np.ndarray:
    """Generates frames after the context of `windows` (episode fields [b, t, ...]); returns the
    side-by-side movie of the RGB channels (module docstring) as uint8 [T, rows, cols, 3]."""
    frames_uint8 = windows["frames"]
    actions = model_actions(windows, model.config)
    t = frames_uint8.shape[1]
    if not 0 < context_frames < t:
        raise ValueError(f"sample context_frames must be in [1, {t - 1}], got {context_frames}")
    sampler = Sampler(model, diffusion_config)
    context = model_frames(windows, model.config)[:, :context_frames]
    rng_prefill, rng_generate = jax.random.split(rng)
    cache = sampler.prefill(context, actions[:, :context_frames], rng_prefill)
    generated, _ = sampler.generate(cache, actions[:, context_frames:], rng_generate)
    generated = rgb_of(model_range_to_uint8(generated))
    movie_frames = np.concatenate([frames_uint8[:, :context_frames], generated], axis=1)
    return side_by_side(movie_frames, frames_uint8, context_frames, scale)
