"""Exponential moving average of the parameters (the weights used for evaluation and samples).

    ema_t = d_t * ema_{t-1} + (1 - d_t) * params_t,   d_t = min(decay, (1 + t) / (10 + t))

The warm-up d_t (as in TF's ExponentialMovingAverage with num_updates) lets the EMA follow the
fast early changes of a short run instead of averaging in the random initialisation for ~1/(1-d)
steps; t is the number of updates done before this one. decay = 0 makes the EMA the weights.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def ema_decay_at(decay: float, step) -> jax.Array:
    """d_t for the update after `step` earlier updates (float32 scalar)."""
    step = jnp.asarray(step, jnp.float32)
    return jnp.minimum(jnp.float32(decay), (1.0 + step) / (10.0 + step))


def ema_update(ema, params, decay: float, step):
    """The EMA pytree after one more update with `params` (same structure as `ema`)."""
    d = ema_decay_at(decay, step)
    return jax.tree.map(lambda e, p: (d * e + (1.0 - d) * p).astype(e.dtype), ema, params)
