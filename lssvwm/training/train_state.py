"""The train state: a plain pytree of the model's weights, the optimizer state and the EMA.

    state = init_train_state(model, tx)           # {"step", "params", "rest", "opt_state", "ema"}
    state, metrics = apply_gradients(state, grads, tx, ema_decay)   # inside the train step

The model lives in the state as NNX `State` trees split from its graph (`nnx.split(model,
nnx.Param, ...)`): `params` are trained, `rest` holds any non-parameter variables unchanged, and
`graphdef` (static) rebuilds the module inside the step with `nnx.merge`. A functional state keeps
checkpointing (one pytree) and donation (every buffer is an argument) simple. The step that
updates it is lssvwm/training/train_step.py; lssvwm/training/build.py makes it, sharded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from lssvwm.training.ema import ema_decay_at, ema_update

TrainState = dict[str, Any]


def split_model(model: nnx.Module):
    """(graphdef, params, rest) of an NNX module."""
    return nnx.split(model, nnx.Param, ...)


def init_train_state(model: nnx.Module, tx: optax.GradientTransformation) -> TrainState:
    """Step 0: the model's parameters, a fresh optimizer state and EMA = parameters."""
    _, params, rest = split_model(model)
    return {
        "step": jnp.zeros((), jnp.int32),
        "params": params,
        "rest": rest,
        "opt_state": tx.init(params),
        "ema": jax.tree.map(jnp.copy, params),
    }


def model_from_state(graphdef, state: Mapping[str, Any], *, ema: bool = False) -> nnx.Module:
    """The module with the state's weights (the EMA weights when `ema`)."""
    return nnx.merge(graphdef, state["ema"] if ema else state["params"], state["rest"])


def tree_norm(tree) -> jax.Array:
    return optax.tree.norm(tree)


def jit_counting_traces(fn, **jit_kwargs):
    """`jax.jit(fn, **jit_kwargs)` that counts its traces: `jitted.trace_count()` is the number
    of times it was traced (= compiled) so far, e.g. once per curriculum stage shape."""
    traces = [0]

    def counted(*args, **kwargs):
        traces[0] += 1
        return fn(*args, **kwargs)

    jitted = jax.jit(counted, **jit_kwargs)
    jitted.trace_count = lambda: traces[0]
    return jitted


def apply_gradients(
    state: TrainState,
    grads,
    tx: optax.GradientTransformation,
    ema_decay: float,
    schedule: optax.Schedule | None = None,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """The optimizer and EMA update of a step: (state after it, its metrics: grad_norm before
    clipping, param_norm, ema_decay, learning_rate when `schedule` is given). Entries of the
    state other than step/params/rest/opt_state/ema (e.g. a carry) are passed through."""
    step = state["step"]
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    new_state = {
        **state,
        "step": step + 1,
        "params": params,
        "opt_state": opt_state,
        "ema": ema_update(state["ema"], params, ema_decay, step),
    }
    metrics = {
        "grad_norm": tree_norm(grads),
        "param_norm": tree_norm(params),
        "ema_decay": ema_decay_at(ema_decay, step),
    }
    if schedule is not None:
        metrics["learning_rate"] = schedule(schedule_count(state["opt_state"], step))
    return new_state, metrics


def schedule_count(opt_state, default):
    """The step count the optimizer's learning-rate schedule reads (optax's
    ScaleByScheduleState): behind the train step after non-finite steps, which leave the
    optimizer state as it was; `default` where the optimizer has no schedule state."""
    counts = [
        value
        for path, value in optax.tree_utils.tree_get_all_with_path(opt_state, "count")
        if getattr(path[-1], "tuple_name", None) == "ScaleByScheduleState"
    ]
    return counts[0] if counts else default


def abstract_train_state(state: TrainState):
    """ShapeDtypeStructs of a train state (the restore target of a checkpoint)."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
