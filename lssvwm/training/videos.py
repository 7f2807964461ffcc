"""Sample videos: the model's autoregressive continuation of held-out windows beside the truth.

    path = write_sample_video(model, diffusion_config, windows, context_frames, path, rng)
    movie = sample_movie(model, diffusion_config, windows, context_frames, rng)  # no file

`windows` holds the episode fields of b held-out windows ([b, t, ...]: frames, the conditioning
field, and depth/poses for the spatial-memory model; `lssvwm.models.inputs` makes the inputs).

The first `context_frames` frames prefill the sampler's cache; the rest are generated unit by
unit (`lssvwm.diffusion.Sampler`, DDIM) with the true actions. Each GIF frame shows, per window
(one row each), the model's frame on the left and the true frame on the right; context frames
show the truth on both sides and a white bar on top, generated frames a red bar.
"""

from __future__ import annotations

import pathlib

import jax
import numpy as np
from PIL import Image

from lssvwm.diffusion import DiffusionConfig, Sampler
from lssvwm.models.inputs import model_actions, model_frames, rgb_of


def to_uint8(frames) -> np.ndarray:
    """Frames in [-1, 1] -> uint8 [0, 255]."""
    return np.clip(np.round((np.asarray(frames) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def side_by_side(generated_BTHWC, truth_BTHWC, context_frames: int, scale: int) -> np.ndarray:
    """[T, rows, cols, 3] uint8 movie frames: per window a row of (model | truth)."""
    b, t, h, w, _ = truth_BTHWC.shape
    bar = max(1, h // 16)
    pad = 2
    movie = np.full((t, b * (h + bar + pad), 2 * w + pad, 3), 32, np.uint8)
    for i in range(b):
        top = i * (h + bar + pad)
        movie[:, top + bar : top + bar + h, :w] = generated_BTHWC[i]
        movie[:, top + bar : top + bar + h, w + pad :] = truth_BTHWC[i]
        movie[:context_frames, top : top + bar] = 255
        movie[context_frames:, top : top + bar] = (220, 40, 40)
    return movie.repeat(scale, axis=1).repeat(scale, axis=2)


def write_gif(movie_THWC: np.ndarray, path: str | pathlib.Path, fps: float = 8.0) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(frame) for frame in movie_THWC]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path


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
    generated = rgb_of(to_uint8(generated))
    movie_frames = np.concatenate([frames_uint8[:, :context_frames], generated], axis=1)
    return side_by_side(movie_frames, frames_uint8, context_frames, scale)


def write_sample_video(
    model,
    diffusion_config: DiffusionConfig,
    windows: dict,
    context_frames: int,
    path: str | pathlib.Path,
    rng: jax.Array,
    *,
    scale: int = 4,
) -> pathlib.Path:
    """`sample_movie` written as a GIF to `path`."""
    movie = sample_movie(model, diffusion_config, windows, context_frames, rng, scale=scale)
    return write_gif(movie, path)
