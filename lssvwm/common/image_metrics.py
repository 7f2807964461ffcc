"""Per-frame image metrics on frames in [0, 1]: PSNR and SSIM (jit-able JAX).

    psnr(prediction, target)   [...]  dB, over the last three axes (H, W, C)
    ssim(prediction, target)   [...]  mean structural similarity, over the last three axes

PSNR is 10 log10(1 / MSE) with the MSE floored at 1e-10, so identical frames score 100 dB
instead of infinity, which would swamp every mean. The training's held-out figures
(`lssvwm.training.evaluation`) and the evaluation tasks both use this one PSNR.

SSIM is Wang et al. (2004): local means, variances and covariance under an 11 x 11 Gaussian
window (sigma 1.5, weights normalised to sum 1, population statistics), the constants
C1 = (0.01 L)^2 and C2 = (0.03 L)^2 with dynamic range L = 1, computed per channel and averaged
over the windows that lie wholly inside the image (no padding) and the channels. This is what
scikit-image's `structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1, channel_axis=-1)` computes (it pads, then crops the
padded border away); `tests/common/test_image_metrics.py` checks it against that implementation.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from lssvwm.common.frames import uint8_to_unit

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
PSNR_MSE_FLOOR = 1e-10


def psnr(prediction, target) -> jax.Array:
    """PSNR in dB of frames in [0, 1], over the last three axes (H, W, C)."""
    prediction, target = _check_pair(prediction, target, "psnr")
    mse = jnp.mean(jnp.square(prediction - target), axis=(-3, -2, -1))
    return 10.0 * jnp.log10(1.0 / jnp.maximum(mse, PSNR_MSE_FLOOR))


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> jax.Array:
    """The 1-D Gaussian weights [size] (sum 1); the 2-D window is their outer product."""
    x = jnp.arange(size, dtype=jnp.float32) - (size - 1) / 2.0
    weights = jnp.exp(-(x**2) / (2.0 * sigma**2))
    return weights / jnp.sum(weights)


def _filter_valid(x_HWC: jax.Array, weights_K: jax.Array) -> jax.Array:
    """Separable filtering of axes -3 and -2 keeping only windows inside the image (the
    'valid' region): [..., H, W, C] -> [..., H - K + 1, W - K + 1, C]."""
    k = weights_K.shape[0]
    h = x_HWC.shape[-3] - k + 1
    x_HWC = sum(weights_K[i] * x_HWC[..., i : i + h, :, :] for i in range(k))
    w = x_HWC.shape[-2] - k + 1
    return sum(weights_K[i] * x_HWC[..., :, i : i + w, :] for i in range(k))


def ssim(
    prediction,
    target,
    *,
    window: int = SSIM_WINDOW,
    sigma: float = SSIM_SIGMA,
    k1: float = SSIM_K1,
    k2: float = SSIM_K2,
) -> jax.Array:
    """Mean SSIM of frames in [0, 1] over the last three axes (H, W, C); see the module doc."""
    prediction, target = _check_pair(prediction, target, "ssim")
    height, width = prediction.shape[-3:-1]
    if min(height, width) < window:
        raise ValueError(
            f"ssim: frames of {height}x{width} are smaller than the {window}x{window} window"
        )
    return _ssim(prediction, target, window, sigma, k1, k2)


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _ssim(prediction, target, window, sigma, k1, k2):
    weights = gaussian_window(window, sigma)
    c1, c2 = k1**2, k2**2
    mu_x = _filter_valid(prediction, weights)
    mu_y = _filter_valid(target, weights)
    # Second moments of the images minus their own means (per channel): (co)variances do not
    # change, and E[x^2] - E[x]^2 loses far less to float32 cancellation.
    x = prediction - jnp.mean(prediction, axis=(-3, -2), keepdims=True)
    y = target - jnp.mean(target, axis=(-3, -2), keepdims=True)
    mx, my = _filter_valid(x, weights), _filter_valid(y, weights)
    var_x = _filter_valid(x * x, weights) - mx * mx
    var_y = _filter_valid(y * y, weights) - my * my
    cov_xy = _filter_valid(x * y, weights) - mx * my
    numerator = (2.0 * mu_x * mu_y + c1) * (2.0 * cov_xy + c2)
    denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return jnp.mean(numerator / denominator, axis=(-3, -2, -1))


def _check_pair(prediction, target, name: str):
    prediction = jnp.asarray(prediction, jnp.float32)
    target = jnp.asarray(target, jnp.float32)
    if prediction.shape != target.shape:
        raise ValueError(f"{name}: shapes differ, {prediction.shape} vs {target.shape}")
    if prediction.ndim < 3:
        raise ValueError(f"{name}: frames must be [..., H, W, C], got {prediction.shape}")
    return prediction, target


@jax.jit
def frame_metrics(prediction_uint8, target_uint8) -> dict[str, jax.Array]:
    """{"psnr", "ssim"} per frame of uint8 frames [..., H, W, C] (scaled to [0, 1] here)."""
    prediction, target = uint8_to_unit(prediction_uint8), uint8_to_unit(target_uint8)
    return {"psnr": psnr(prediction, target), "ssim": ssim(prediction, target)}
