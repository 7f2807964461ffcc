"""The diffusion-forcing objective with long-context (clean-prefix) training.

    loss, metrics = diffusion_forcing_loss(model_fn, batch, rng, config)

`model_fn(noisy_frames_BTHWC, noise_level_BT, actions)` is the parallel pass (a `WorldModel`
or any callable with that signature; one whose `reads_clean_frames` is true also gets
`clean_frames=` and `rng=` keywords: the spatial memory stores the clean window), `batch`
holds `frames` (float in [-1, 1], [b, t, H, W, C]) and `actions` (whatever the model takes:
int [b, t] or poses [b, t, 3]).
Pure and jit-able: a trainer calls it inside its jitted step, e.g.

    grad_fn = nnx.value_and_grad(
        lambda model: diffusion_forcing_loss(model, batch, rng, config), has_aux=True)

The pieces are separate so evaluation can reuse them: `noise_frames` noises frames at given
levels (fixed levels for a held-out loss), `masked_frame_loss` averages a per-frame squared
error over the frames with loss, guarding the all-clean case.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lssvwm.diffusion.clean_prefix import training_noise_levels
from lssvwm.diffusion.config import DiffusionConfig
from lssvwm.diffusion.schedules import NoiseSchedule
from lssvwm.diffusion.targets import per_frame, training_target

ModelFn = Callable[[jax.Array, jax.Array, Any], jax.Array]
MEMORY_STREAM = 0x6D656D  # fold_in tag of the model's own training randomness (memory dropout)

# Noise-level bins of the per-bin loss metrics (low / mid / high noise).
LEVEL_BINS = (("low", 0.0, 1 / 3), ("mid", 1 / 3, 2 / 3), ("high", 2 / 3, 1.0 + 1e-6))


class NoisedFrames(NamedTuple):
    """Model inputs and regression targets of one draw (all [b, t, ...])."""

    noisy: jax.Array  # [b, t, H, W, C] alpha x0 + sigma eps (x0 itself where the level is 0)
    noise_level: jax.Array  # [b, t] float32 in [0, 1]
    target: jax.Array  # [b, t, H, W, C] the regression target (v, eps or x0)
    loss_mask: jax.Array  # [b, t] float32: 1 where the frame carries loss


def noise_frames(
    rng: jax.Array,
    frames_BTHWC: jax.Array,
    noise_level_BT: jax.Array,
    config: DiffusionConfig,
    loss_mask_BT: jax.Array | None = None,
) -> NoisedFrames:
    """Noises each frame at its own level; loss on every frame unless a mask is given."""
    _check_frames(frames_BTHWC)
    x0 = frames_BTHWC.astype(jnp.float32)
    if noise_level_BT.shape != x0.shape[:2]:
        raise ValueError(
            f"noise levels must be per frame {x0.shape[:2]}, got {noise_level_BT.shape}"
        )
    schedule = NoiseSchedule.from_config(config)
    alpha_BT, sigma_BT = schedule.alpha_sigma(noise_level_BT)
    alpha, sigma = per_frame(alpha_BT), per_frame(sigma_BT)
    eps = jax.random.normal(rng, x0.shape, jnp.float32)
    noisy = alpha * x0 + sigma * eps
    target = training_target(x0, eps, alpha, sigma, config.target)
    if loss_mask_BT is None:
        loss_mask_BT = jnp.ones(x0.shape[:2], jnp.float32)
    return NoisedFrames(noisy, noise_level_BT.astype(jnp.float32), target, loss_mask_BT)


def draw_training_inputs(
    rng: jax.Array, frames_BTHWC: jax.Array, config: DiffusionConfig, *, chunk: int = 1
) -> NoisedFrames:
    """Diffusion-forcing levels with a clean prefix (see clean_prefix.py), then noise; the loss
    mask is 1 exactly on the noisy (non-prefix) frames."""
    _check_frames(frames_BTHWC)
    rng_levels, rng_noise = jax.random.split(rng)
    level_BT, clean_BT = training_noise_levels(
        rng_levels, frames_BTHWC.shape[:2], config, chunk=chunk
    )
    loss_mask = (~clean_BT).astype(jnp.float32)
    return noise_frames(rng_noise, frames_BTHWC, level_BT, config, loss_mask)


def masked_frame_loss(
    prediction_BTHWC: jax.Array,
    target_BTHWC: jax.Array,
    loss_mask_BT: jax.Array,
    noise_level_BT: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean squared error over the frames with loss (each such frame weighs the same).

    Returns (loss, metrics). A batch without any frame carrying loss gives loss 0 (finite, no
    gradient) and `metrics["all_clean"] = 1`. With `noise_level_BT`, also the loss per level bin
    (`loss_low/mid/high`; 0 for an empty bin).
    """
    if prediction_BTHWC.shape != target_BTHWC.shape:
        raise ValueError(
            f"prediction {prediction_BTHWC.shape} and target {target_BTHWC.shape} differ in shape"
        )
    if loss_mask_BT.shape != target_BTHWC.shape[:2]:
        raise ValueError(
            f"loss mask must be per frame {target_BTHWC.shape[:2]}, got {loss_mask_BT.shape}"
        )
    error = prediction_BTHWC.astype(jnp.float32) - target_BTHWC.astype(jnp.float32)
    frame_mse_BT = jnp.mean(jnp.square(error), axis=(2, 3, 4))
    mask = loss_mask_BT.astype(jnp.float32)
    count = jnp.sum(mask)
    loss = _masked_mean(frame_mse_BT, mask)
    metrics = {
        "loss": loss,
        "loss_frames": count,
        "noisy_fraction": count / mask.size,
        "all_clean": (count == 0).astype(jnp.float32),
    }
    if noise_level_BT is not None:
        for name, lo, hi in LEVEL_BINS:
            in_bin = mask * ((noise_level_BT >= lo) & (noise_level_BT < hi))
            metrics[f"loss_{name}"] = _masked_mean(frame_mse_BT, in_bin)
    return loss, metrics


def _masked_mean(values, mask):
    # Where the mask is empty the numerator is 0 too: divide by 1, not 0 (finite, zero gradient).
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def diffusion_forcing_loss(
    model_fn: ModelFn,
    batch: Mapping[str, Any],
    rng: jax.Array,
    config: DiffusionConfig,
    *,
    chunk: int | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Diffusion-forcing loss of one batch with clean-prefix training: (loss, metrics).

    batch: `frames` float [b, t, H, W, C] in [-1, 1] and `actions` (as the model takes them).
    chunk: the model's unit: clean prefixes are whole chunks and, with
      `config.chunk_synchronous`, a chunk's frames share a level. None: `model_fn.unit` when the
      model has one (a `WorldModel`), else 1.
    Metrics: loss, loss per level bin, noisy_fraction, loss_frames, all_clean, prefix_fraction
    (share of samples with a clean prefix).
    """
    for key in ("frames", "actions"):
        if key not in batch:
            raise ValueError(f"batch has no {key!r} (keys: {sorted(batch)})")
    if chunk is None:
        chunk = getattr(model_fn, "unit", 1)
    inputs = draw_training_inputs(rng, batch["frames"], config, chunk=chunk)
    extra = {}
    if getattr(model_fn, "reads_clean_frames", False):
        # A memory of the clean window (the spatial memory), with its own training noise draw.
        extra = {"clean_frames": batch["frames"], "rng": jax.random.fold_in(rng, MEMORY_STREAM)}
    prediction = model_fn(inputs.noisy, inputs.noise_level, batch["actions"], **extra)
    loss, metrics = masked_frame_loss(
        prediction, inputs.target, inputs.loss_mask, inputs.noise_level
    )
    metrics["prefix_fraction"] = jnp.mean((inputs.loss_mask[:, 0] == 0).astype(jnp.float32))
    return loss, metrics


def _check_frames(frames_BTHWC) -> None:
    if frames_BTHWC.ndim != 5:
        raise ValueError(f"frames must be [b, t, H, W, C], got shape {frames_BTHWC.shape}")
