"""Pixel ranges of frames: stored uint8 [0, 255], the model's [-1, 1], image metrics' [0, 1].

    x = uint8_to_model_range(frames_uint8)     # float32 [-1, 1], numpy or jax (as given)
    frames_uint8 = model_range_to_uint8(x)     # numpy uint8, rounded and clipped
    unit = model_range_to_unit(x)              # [0, 1], numpy or jax (PSNR of model frames)
    unit = uint8_to_unit(frames_uint8)         # float32 [0, 1]

Functions keep the array library of their input, so they run on the host and inside jitted
steps alike (the train step scales uint8 frames on the device: a quarter of the bytes to send).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def _xp(array):
    return np if isinstance(array, np.ndarray) else jnp


def uint8_to_model_range(frames_uint8):
    """uint8 [0, 255] -> float32 [-1, 1] (the range the diffusion targets assume)."""
    xp = _xp(frames_uint8)
    return xp.asarray(frames_uint8).astype(xp.float32) * (2.0 / 255.0) - 1.0


def model_range_to_uint8(frames) -> np.ndarray:
    """Frames in [-1, 1] -> numpy uint8 [0, 255] (values outside the range are clipped)."""
    return np.clip(np.round((np.asarray(frames) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def model_range_to_unit(frames):
    """Frames in [-1, 1] -> [0, 1] (no clipping: clip first where predictions may overshoot)."""
    return (frames + 1.0) / 2.0


def uint8_to_unit(frames_uint8):
    """uint8 [0, 255] -> float32 [0, 1]."""
    xp = _xp(frames_uint8)
    return xp.asarray(frames_uint8).astype(xp.float32) / 255.0
