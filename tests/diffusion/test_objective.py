"""The diffusion-forcing loss: loss only on noisy frames, the all-clean guard, the reference
value, and a jitted gradient through the real (tiny) world model."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from tiny_diffusion_model import frames_and_poses, tiny_model

from lssvwm.diffusion import (
    DiffusionConfig,
    diffusion_forcing_loss,
    draw_training_inputs,
    masked_frame_loss,
    x0_and_eps,
)
from lssvwm.diffusion.schedules import NoiseSchedule
from lssvwm.diffusion.targets import per_frame

B, T = 6, 8
CONFIG = DiffusionConfig(clean_prefix_prob=1.0)  # every sample has a clean prefix
FRAMES, POSES = frames_and_poses(B, T)
BATCH = {"frames": FRAMES, "actions": POSES}


# Jitted: eager dispatch of the draw's small random ops costs seconds on a busy CPU.
_draw = jax.jit(draw_training_inputs, static_argnums=2, static_argnames="chunk")


def _output_stub(output_BTHWC):
    """A 'model' that returns a fixed array (a parameter to differentiate by)."""
    return lambda noisy, level, actions: output_BTHWC


@functools.partial(jax.jit, static_argnames="config")
def _loss_and_grad(output, rng, config=CONFIG):
    def loss_fn(output):
        return diffusion_forcing_loss(_output_stub(output), BATCH, rng, config)

    return jax.value_and_grad(loss_fn, has_aux=True)(output)


def test_loss_covers_only_the_noisy_frames():
    rng = jax.random.key(0)
    inputs = _draw(rng, FRAMES, CONFIG)
    clean = np.asarray(inputs.loss_mask) == 0
    assert clean[:, 0].all() and (~clean).any()  # prefixes drawn, noisy frames left
    output = jax.random.normal(jax.random.key(1), FRAMES.shape)
    (loss, metrics), grad = _loss_and_grad(output, rng)
    # Changing the output on clean frames changes nothing; on a noisy frame it does.
    changed = jnp.where(per_frame(jnp.asarray(clean)), output + 100.0, output)
    (loss_changed, _), _ = _loss_and_grad(changed, rng)
    assert float(loss_changed) == float(loss)
    noisy_index = tuple(np.argwhere(~clean)[0])
    (loss_noisy, _), _ = _loss_and_grad(output.at[noisy_index].add(1.0), rng)
    assert float(loss_noisy) != float(loss)
    grad_norm_BT = np.abs(np.asarray(grad)).sum(axis=(2, 3, 4))
    assert np.all(grad_norm_BT[clean] == 0) and np.all(grad_norm_BT[~clean] > 0)
    # Reference: mean over noisy frames of the per-frame MSE against the drawn target.
    frame_mse = np.mean((np.asarray(output) - np.asarray(inputs.target)) ** 2, axis=(2, 3, 4))
    np.testing.assert_allclose(loss, frame_mse[~clean].mean(), rtol=1e-5)
    assert float(metrics["prefix_fraction"]) == 1.0
    assert float(metrics["noisy_fraction"]) == pytest.approx((~clean).mean())
    assert float(metrics["all_clean"]) == 0.0


def test_drawn_target_is_consistent_with_the_noised_frames():
    """The v target of each noisy frame turns back into the clean frame (and the clean prefix
    enters the model unchanged at level 0)."""
    inputs = _draw(jax.random.key(5), FRAMES, CONFIG)
    alpha, sigma = NoiseSchedule().alpha_sigma(inputs.noise_level)
    x0_hat, _ = x0_and_eps(inputs.target, inputs.noisy, per_frame(alpha), per_frame(sigma), "v")
    np.testing.assert_allclose(x0_hat, FRAMES, atol=1e-5)
    clean = np.asarray(inputs.loss_mask) == 0
    np.testing.assert_array_equal(np.asarray(inputs.noisy)[clean], np.asarray(FRAMES)[clean])
    assert np.all(np.asarray(inputs.noise_level)[clean] == 0)


def test_all_clean_batch_gives_zero_finite_loss_and_a_flag():
    prediction = jnp.ones((2, 3, 2, 2, 1))

    def loss_fn(prediction):
        return masked_frame_loss(prediction, jnp.zeros_like(prediction), jnp.zeros((2, 3)))

    (loss, metrics), grad = jax.value_and_grad(loss_fn, has_aux=True)(prediction)
    assert float(loss) == 0.0 and float(metrics["all_clean"]) == 1.0
    assert np.all(np.asarray(grad) == 0)
    assert all(np.isfinite(float(v)) for v in metrics.values())


def test_bad_batches_are_clear():
    with pytest.raises(ValueError, match="batch has no 'actions'"):
        diffusion_forcing_loss(_output_stub(FRAMES), {"frames": FRAMES}, jax.random.key(0), CONFIG)
    with pytest.raises(ValueError, match=r"frames must be \[b, t, H, W, C\]"):
        draw_training_inputs(jax.random.key(0), FRAMES[0], CONFIG)
    with pytest.raises(ValueError, match="not a whole number of chunks"):
        draw_training_inputs(jax.random.key(0), FRAMES[:, :7], CONFIG, chunk=2)


def test_jitted_gradient_through_the_world_model():
    """What a trainer does: nnx.value_and_grad of the loss of a WorldModel inside jit."""
    model = tiny_model()
    config = DiffusionConfig(context_noise=0.1)

    @nnx.jit
    def loss_and_grad(model, batch, rng):
        fn = lambda m: diffusion_forcing_loss(m, batch, rng, config)  # chunk: m.unit
        return nnx.value_and_grad(fn, has_aux=True)(model)

    (loss, metrics), grads = loss_and_grad(model, BATCH, jax.random.key(7))
    assert np.isfinite(float(loss)) and float(loss) > 0
    leaves = jax.tree.leaves(nnx.state(grads, nnx.Param))
    assert leaves and all(np.isfinite(np.asarray(g)).all() for g in leaves)
    assert sum(float(jnp.abs(g).sum()) for g in leaves) > 0
    assert set(metrics) >= {"loss", "loss_low", "loss_mid", "loss_high", "prefix_fraction"}


def test_chunk_defaults_to_the_models_unit():
    """A model with unit 2 (chunked window) gets whole-chunk prefixes and per-chunk levels
    without being told."""

    class ChunkedStub:
        unit = 2

        def __call__(self, noisy, level, actions):
            seen["level"] = level
            return noisy

    seen = {}

    @jax.jit
    def levels(rng):
        diffusion_forcing_loss(ChunkedStub(), BATCH, rng, CONFIG)
        return seen["level"]

    level = np.asarray(levels(jax.random.key(11))).reshape(B, T // 2, 2)
    np.testing.assert_array_equal(level[..., 0], level[..., 1])
    prefix_length = (level[..., 0] == 0).sum(axis=1) * 2
    assert np.all(prefix_length > T / 2) and np.all(prefix_length <= T - 2)
