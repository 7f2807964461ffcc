"""The Mamba-2 recurrence one token at a time, and the plainly sequential reference scan.

Per head h (group g = h // (heads // groups)):
    state_t = exp(dt_t * A_h) * state_{t-1} + dt_t * outer(x_t, B_t)      state [p, n]
    y_t     = state_t @ C_t                                                 y [p]
A position flagged by `reset` starts a new episode: its decay is forced to 0.

`ssd_sequential` is the obvious `lax.scan` of `ssd_step`; every fast path is tested against it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lssvwm.ssm._checks import check_ssd_shapes


def _heads_from_groups(M_BGN: jax.Array, heads: int) -> jax.Array:
    """[b, g, n] -> [b, h, n] by repeating each group for its heads."""
    groups = M_BGN.shape[1]
    return jnp.repeat(M_BGN, heads // groups, axis=1)


def ssd_step(state, x, dt, A, B, C, *, reset=None):
    """Advances the SSM by one token.

    Args:
      state: [b, h, p, n] carried state (any float dtype; computed in float32).
      x: [b, h, p] input; dt: [b, h] positive step sizes; A: [h] negative decay rates.
      B, C: [b, g, n] input and output projections shared by the heads of a group.
      reset: optional [b] 0/1; where 1 the previous state is dropped (a new episode).

    Returns:
      y [b, h, p] in x's dtype and the new state [b, h, p, n] in float32.
    """
    _, _, h, _, _, _ = check_ssd_shapes(x, dt, A, B, C, state, reset, has_length=False)
    f32 = jnp.float32
    state = state.astype(f32)
    dt = dt.astype(f32)
    decay_BH = jnp.exp(dt * A.astype(f32))
    if reset is not None:
        decay_BH = jnp.where(reset.astype(bool)[:, None], 0.0, decay_BH)
    B_BHN = _heads_from_groups(B.astype(f32), h)
    C_BHN = _heads_from_groups(C.astype(f32), h)
    input_BHP = dt[..., None] * x.astype(f32)
    new_state = decay_BH[..., None, None] * state + input_BHP[..., None] * B_BHN[:, :, None, :]
    y = jnp.einsum("bhpn,bhn->bhp", new_state, C_BHN)
    return y.astype(x.dtype), new_state


def ssd_sequential(x, dt, A, B, C, *, initial_state=None, reset=None):
    """Reference SSD: a `lax.scan` of `ssd_step` over the length axis.

    Shapes as in `lssvwm.ssm.ssd`: x [b, l, h, p], dt [b, l, h], A [h], B, C [b, l, g, n],
    initial_state [b, h, p, n], reset [b, l]. Returns (y [b, l, h, p], final_state float32).
    """
    b, l, h, p, g, n = check_ssd_shapes(x, dt, A, B, C, initial_state, reset, has_length=True)
    if initial_state is None:
        initial_state = jnp.zeros((b, h, p, n), jnp.float32)
    if reset is None:
        reset = jnp.zeros((b, l), jnp.int32)
    time_major = lambda a: jnp.moveaxis(a, 1, 0)

    def body(state, inputs):
        x_t, dt_t, B_t, C_t, reset_t = inputs
        y_t, state = ssd_step(state, x_t, dt_t, A, B_t, C_t, reset=reset_t)
        return state, y_t

    final_state, y_LBHP = jax.lax.scan(
        body, initial_state.astype(jnp.float32), tuple(map(time_major, (x, dt, B, C, reset)))
    )
    return time_major(y_LBHP), final_state
