"""The train step: one factory for plain training and every state-carrying policy.

    train_step = make_train_step(graphdef, diffusion, tx, state_config, ema_decay=..., seed=...)
    state, carry, metrics = train_step(state, carry, batch)    # jitted, donating state and carry

Plain training is the trivial state policy (`StateConfig()`: every window starts from the zero
state, nothing carried), so `carry` is None and the model runs its plain parallel pass. Under a
policy (lssvwm/training/state_carrying.py) each window starts from the carried or policy-made
initial state and the step returns the carry for the next window -- an output of the step beside
the train state, never written into it.

The step's noise draw is `fold_in(PRNGKey(seed), step)`: a pure function of the step, so a
resumed run draws exactly what an uninterrupted one would, with or without a policy.

Non-finite guard, on device, with no host read: a step whose loss, gradient norm (before
clipping) or new parameter norm is not finite changes nothing -- parameters, optimizer state
and EMA stay those of the step before (a `jnp.where` over the state; the optimizer's own count
does not advance, so its learning-rate schedule, and the logged `learning_rate`, run behind
`step` by the steps skipped) -- while `step` still advances (its batch is spent; the next step
draws new noise). Its `nonfinite` metric says which quantity failed (`NONFINITE_BITS`; 0: a
finite step), and under a state policy the carried cache restarts empty after it. Counting
skipped steps and stopping on them is the host's (lssvwm.training.metrics.NonfiniteGuard, read
at logged and saved steps only).

`batch`: host data placed on the mesh -- `frames` uint8 [b, t, H, W, C] (scaled to [-1, 1]
inside the step: a quarter of the bytes cross the host link), `depth` float32 [b, t, H, W] for
RGB-D models, `actions` (lssvwm.models.inputs.model_actions) and, with carrying, the stream
fields `episode_start`, `episode_id`, `start_frame` [b] (a `ConsecutiveWindows` batch).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from lssvwm.diffusion import DiffusionConfig, diffusion_forcing_loss
from lssvwm.models.inputs import model_frames
from lssvwm.training.state_carrying import (
    POLICY_STREAM,
    StateConfig,
    carry_batch_size,
    clean_pass_cache,
    slot_resets,
)
from lssvwm.training.train_state import TrainState, apply_gradients, jit_counting_traces

PLAIN = StateConfig()  # the trivial policy: zero state per window, nothing carried
# Stream fields a carrying step reads beside frames and actions (slot positions, resets).
STREAM_FIELDS = ("episode_start", "episode_id", "start_frame")
# The quantities the non-finite guard checks, and their bit in the step's `nonfinite` metric.
NONFINITE_BITS = {"loss": 1, "grad_norm": 2, "param_norm": 4}


def nonfinite_flags(metrics: Mapping[str, jax.Array]) -> jax.Array:
    """int32 scalar: the bits (`NONFINITE_BITS`) of the checked metrics that are not finite."""
    flags = jnp.zeros((), jnp.int32)
    for name, bit in NONFINITE_BITS.items():
        flags = flags | jnp.where(jnp.isfinite(metrics[name]), 0, bit).astype(jnp.int32)
    return flags


def keep_where(ok: jax.Array, new, old):
    """`new` where the scalar `ok`, else `old`, leaf by leaf (same structures; `new`'s dtypes)."""
    return jax.tree.map(lambda a, b: jnp.where(ok, a, b).astype(a.dtype), new, old)


@jax.jit
def all_finite(tree) -> jax.Array:
    """Whether every floating-point leaf of `tree` is finite (a bool scalar on device)."""
    leaves = [
        jnp.all(jnp.isfinite(leaf))
        for leaf in jax.tree.leaves(tree)
        if jnp.issubdtype(leaf.dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def make_train_step(
    graphdef,
    diffusion_config: DiffusionConfig,
    tx: optax.GradientTransformation,
    state_config: StateConfig = PLAIN,
    *,
    ema_decay: float,
    seed: int,
    schedule: optax.Schedule | None = None,
    shardings: tuple | None = None,
):
    """The jitted step `(state, carry, batch) -> (state, carry, metrics)`, donating state and
    carry.

    `shardings`: (train state, carry, batch) shardings -- explicit `in_shardings`, and the
    state's and carry's `out_shardings` (lssvwm.training.build gives them); None: as placed.
    Metrics: the diffusion-forcing metrics (loss, loss per level bin, ...), grad_norm (before
    clipping), param_norm (of the updated parameters), ema_decay, learning_rate (when
    `schedule` is given), nonfinite (0, or the `NONFINITE_BITS` of a step that was skipped:
    see the module docstring); under a state policy also reset_fraction and stream_breaks.
    """
    base_rng = jax.random.PRNGKey(seed)

    def train_step(state: TrainState, carry, batch: Mapping[str, jax.Array]):
        rng = jax.random.fold_in(base_rng, state["step"])
        model = nnx.merge(graphdef, state["params"], state["rest"])
        frames = model_frames(batch, model.config)
        actions = batch["actions"]
        if state_config.stateful:
            start = _window_start(model, state_config, carry, batch, frames.shape[1], rng)
        else:
            start = None

        def loss_fn(params):
            model = nnx.merge(graphdef, params, state["rest"])
            final = {}
            if start is None:
                model_fn = model
            else:

                def model_fn(noisy, level, actions, **memory_inputs):
                    prediction, final["cache"] = model.prefill(
                        noisy, level, actions, start["initial"], **memory_inputs
                    )
                    return prediction

                model_fn.reads_clean_frames = model.reads_clean_frames
            loss, metrics = diffusion_forcing_loss(
                model_fn,
                {"frames": frames, "actions": actions},
                rng,
                diffusion_config,
                chunk=model.unit,
            )
            return loss, (metrics, final.get("cache"))

        (loss, (metrics, noisy_final)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state["params"]
        )
        new_state, update_metrics = apply_gradients(state, grads, tx, ema_decay, schedule)
        metrics = {**metrics, "loss": loss, **update_metrics}
        metrics["nonfinite"] = nonfinite_flags(metrics)
        finite = metrics["nonfinite"] == 0
        # A non-finite step keeps the state before it; only the step count moves on.
        new_state = keep_where(finite, new_state, {**state, "step": new_state["step"]})
        if start is None:
            return new_state, carry, metrics
        next_carry = _next_carry(
            model, state_config, diffusion_config, carry, batch, frames, actions, start, noisy_final
        )
        # Whatever a non-finite step carries may be poisoned too: the next window starts empty.
        fresh_cache = model.init_cache(carry_batch_size(carry))
        next_carry["cache"] = keep_where(finite, next_carry["cache"], fresh_cache)
        metrics["reset_fraction"] = jnp.mean(start["reset_B"].astype(jnp.float32))
        metrics["stream_breaks"] = start["breaks"]
        return new_state, next_carry, metrics

    jit_kwargs = dict(donate_argnums=(0, 1))
    if shardings is not None:
        state_sharding, carry_sharding, batch_sharding = shardings
        jit_kwargs.update(
            in_shardings=(state_sharding, carry_sharding, batch_sharding),
            out_shardings=(state_sharding, carry_sharding, None),
        )
    return jit_counting_traces(train_step, **jit_kwargs)


def _window_start(model, state_config: StateConfig, carry, batch, window_length: int, rng):
    """Which slots restart (reset_B), how many broke their stream, and the initial state."""
    rng_reset, rng_initial, rng_clean = jax.random.split(jax.random.fold_in(rng, POLICY_STREAM), 3)
    batch_size = batch["frames"].shape[0]
    if carry is None or carry_batch_size(carry) != batch_size:
        raise ValueError(
            f"a state policy needs a carry of {batch_size} slots (init_carry), got "
            f"{None if carry is None else carry_batch_size(carry)}"
        )
    reset_B, breaks = slot_resets(state_config, carry, batch, window_length, rng_reset)
    initial = jax.lax.stop_gradient(
        state_config.policy.initial_state(model, carry["cache"], reset_B, rng_initial)
    )
    return {"reset_B": reset_B, "breaks": breaks, "initial": initial, "rng_clean": rng_clean}


def _next_carry(
    model, state_config, diffusion_config, carry, batch, frames, actions, start, noisy_final
):
    """The carry after this window: its slots' positions, and the cache the next window starts
    from -- the old one passed through (nothing kept), the clean pass's, or the training pass's
    own final state; never with a gradient across windows."""
    if "episode_id" in batch and "start_frame" in batch:
        episode_id = jnp.asarray(batch["episode_id"], jnp.int32)
        next_frame = jnp.asarray(batch["start_frame"], jnp.int32) + frames.shape[1]
    else:
        episode_id, next_frame = carry["episode_id"], carry["next_frame"]
    if not state_config.keeps_final_state:
        cache = carry["cache"]
    elif state_config.carry_source == "clean":
        cache = clean_pass_cache(
            model, frames, actions, start["initial"], diffusion_config, start["rng_clean"]
        )
    else:
        cache = noisy_final
    return {
        "cache": jax.lax.stop_gradient(cache),
        "episode_id": episode_id,
        "next_frame": next_frame,
    }
