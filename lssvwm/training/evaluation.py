"""Held-out evaluation of a train state: the figures of `eval_final.json` (ARCHITECTURE.md).

    results = evaluate(graphdef, state, heldout, diffusion_config, eval_section)

`heldout` is a fixed batch of held-out windows (`lssvwm.data.pipeline.fixed_windows` over the
eval split): `frames` uint8 [n, t, H, W, C] and `actions` (what the model takes). Evaluated with
the EMA weights. All figures are paired: the same windows and the same noise in every variant.

  val_loss                   the first `context_frames` frames clean, every later frame noised at
                             one fixed level (each of `noise_levels` in turn, the same noise draw
                             for every variant); mean squared error of the model's training target
                             on the noised frames, averaged over the levels -- with true actions
  val_loss_shuffled_actions  the same, with the actions of another window (rolled by one across
                             the held-out set): the gap measures how much the model uses actions
  val_loss_at_<level>        the true-action loss per level (and `..._shuffled_at_<level>`)
  tf_next_frame_psnr         teacher forcing: all frames clean except the last, which is pure
                             noise (level 1); the model's one-step x0 estimate of the last frame,
                             clipped to the frame range, against the true frame (PSNR in dB on
                             [0, 1] pixels, lssvwm.common.image_metrics, averaged over windows)
  copy_last_frame_psnr       the same last frames "predicted" by copying the frame before
  tf_next_frame_psnr_shuffled_actions   teacher-forced PSNR with the rolled actions
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lssvwm.common.frames import model_range_to_unit
from lssvwm.common.image_metrics import psnr
from lssvwm.diffusion import (
    DiffusionConfig,
    NoiseSchedule,
    masked_frame_loss,
    noise_frames,
    per_frame,
    x0_and_eps,
)
from lssvwm.models.inputs import model_frames, rgb_of


def shuffle_actions(actions: jax.Array) -> jax.Array:
    """Every window gets the next window's actions (a permutation without fixed points)."""
    if actions.shape[0] < 2:
        raise ValueError("shuffled-action figures need at least 2 held-out windows")
    return jnp.roll(actions, 1, axis=0)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def heldout_losses(
    graphdef,
    config: DiffusionConfig,
    context_frames: int,
    levels,
    weights,
    rest,
    x0,
    actions,
    rng,
):
    """Per-window fixed-level losses with true and with shuffled actions: dict of [n] arrays
    (`x0`: model frames in [-1, 1])."""
    model = nnx.merge(graphdef, weights, rest)
    n, t = x0.shape[:2]
    noisy_BT = jnp.broadcast_to(jnp.arange(t) >= context_frames, (n, t))
    variants = {"": actions, "_shuffled": shuffle_actions(actions)}
    out = {}
    for i, level in enumerate(levels):
        level_BT = jnp.where(noisy_BT, jnp.float32(level), 0.0)
        inputs = noise_frames(jax.random.fold_in(rng, i), x0, level_BT, config, noisy_BT)
        for suffix, acts in variants.items():
            prediction = model(inputs.noisy, inputs.noise_level, acts)
            # Per window: masked_frame_loss on a batch of one, vmapped over the windows.
            per_window = jax.vmap(lambda p, y, m: masked_frame_loss(p[None], y[None], m[None])[0])(
                prediction, inputs.target, inputs.loss_mask
            )
            out[f"loss{suffix}_at_{level:g}"] = per_window
    return out


@functools.partial(jax.jit, static_argnums=(0, 1))
def teacher_forced_next_frame(graphdef, config: DiffusionConfig, weights, rest, x0, actions, rng):
    """PSNR [n] (RGB) of the one-step x0 estimate of the last frame from pure noise (true
    context), with true and shuffled actions, and of copying the previous frame."""
    model = nnx.merge(graphdef, weights, rest)
    n, t = x0.shape[:2]
    level_BT = jnp.zeros((n, t), jnp.float32).at[:, -1].set(1.0)
    inputs = noise_frames(rng, x0, level_BT, config)
    alpha, sigma = NoiseSchedule.from_config(config).alpha_sigma(level_BT[:, -1:])
    truth = model_range_to_unit(rgb_of(x0[:, -1]))
    out = {"copy_last_frame_psnr": psnr(model_range_to_unit(rgb_of(x0[:, -2])), truth)}
    for name, acts in (("", actions), ("_shuffled_actions", shuffle_actions(actions))):
        prediction = model(inputs.noisy, inputs.noise_level, acts)[:, -1:]
        estimate, _ = x0_and_eps(
            prediction, inputs.noisy[:, -1:], per_frame(alpha), per_frame(sigma), config.target
        )
        estimate = model_range_to_unit(jnp.clip(rgb_of(estimate[:, 0]), -1.0, 1.0))
        out[f"tf_next_frame_psnr{name}"] = psnr(estimate, truth)
    return out


def _batches(heldout: Mapping[str, np.ndarray], batch_size: int):
    n = heldout["frames"].shape[0]
    for start in range(0, n, batch_size):
        yield {k: v[start : start + batch_size] for k, v in heldout.items()}


def evaluate(
    graphdef,
    state: Mapping,
    heldout: Mapping[str, np.ndarray],
    diffusion_config: DiffusionConfig,
    *,
    context_frames: int,
    noise_levels: Sequence[float],
    batch_size: int,
    seed: int = 0,
    use_ema: bool = True,
) -> dict[str, float]:
    """The eval_final figures (module docstring) over `heldout`, in batches of `batch_size`.

    The shuffle rolls actions within each batch, so a batch needs >= 2 windows.
    """
    t = heldout["frames"].shape[1]
    if not 0 < context_frames < t:
        raise ValueError(f"eval context_frames must be in [1, {t - 1}], got {context_frames}")
    if not noise_levels or not all(0.0 < float(x) <= 1.0 for x in noise_levels):
        raise ValueError(f"eval noise_levels must be in (0, 1], got {list(noise_levels)}")
    levels = tuple(float(x) for x in noise_levels)
    weights = state["ema"] if use_ema else state["params"]
    rng = jax.random.PRNGKey(seed)
    model_config = nnx.merge(graphdef, weights, state["rest"]).config
    collected: dict[str, list[np.ndarray]] = {}
    for index, batch in enumerate(_batches(heldout, batch_size)):
        batch_rng = jax.random.fold_in(rng, index)
        x0 = model_frames(batch, model_config)
        losses = heldout_losses(
            graphdef,
            diffusion_config,
            context_frames,
            levels,
            weights,
            state["rest"],
            x0,
            batch["actions"],
            batch_rng,
        )
        psnrs = teacher_forced_next_frame(
            graphdef,
            diffusion_config,
            weights,
            state["rest"],
            x0,
            batch["actions"],
            jax.random.fold_in(batch_rng, 1 << 20),
        )
        for name, values in {**losses, **psnrs}.items():
            collected.setdefault(name, []).append(np.asarray(values))
    means = {name: float(np.mean(np.concatenate(v))) for name, v in collected.items()}
    results = {
        "val_loss": float(np.mean([means[f"loss_at_{x:g}"] for x in levels])),
        "val_loss_shuffled_actions": float(
            np.mean([means[f"loss_shuffled_at_{x:g}"] for x in levels])
        ),
        "tf_next_frame_psnr": means["tf_next_frame_psnr"],
        "copy_last_frame_psnr": means["copy_last_frame_psnr"],
        "tf_next_frame_psnr_shuffled_actions": means["tf_next_frame_psnr_shuffled_actions"],
    }
    for x in levels:
        results[f"val_loss_at_{x:g}"] = means[f"loss_at_{x:g}"]
        results[f"val_loss_shuffled_actions_at_{x:g}"] = means[f"loss_shuffled_at_{x:g}"]
    results["num_windows"] = int(heldout["frames"].shape[0])
    results["context_frames"] = int(context_frames)
    results["window_length"] = int(t)
    results["noise_levels"] = list(levels)
    results["weights"] = "ema" if use_ema else "params"
    return results
