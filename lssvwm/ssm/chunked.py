"""Chunked state-space-duality (SSD) scan: exact, matmul-shaped Mamba-2 over long sequences.

The sequence is cut into chunks of Q tokens. Inside a chunk the recurrence is written as a masked
quadratic form (attention-like, Q x Q); across chunks only the [h, p, n] state is carried by a
short recurrence. Per chunk (cs = within-chunk inclusive cumsum of log-decays a = dt * A):

    y_diag[q]  = sum_{s<=q} exp(cs[q] - cs[s]) * (C[q] . B[s]) * dt[s] * x[s]
    y_off[q]   = exp(cs[q]) * (C[q] @ S_in)                        S_in: state entering the chunk
    S_out      = exp(cs[Q-1]) * S_in + sum_s exp(cs[Q-1] - cs[s]) * dt[s] * outer(x[s], B[s])

Stability: exp is only ever taken of a masked difference `cs[q] - cs[s]` (q >= s, so <= 0) or of
`cs[q]` itself (<= 0); masks are applied *before* exp, so large decays underflow to 0 instead of
overflowing, in values and gradients. Resets use an integer running count: a source s reaches a
target q only if no reset lies in (s, q].

Ragged lengths are padded with dt = 0 (identity decay, no input), which leaves the outputs and
the final state unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lssvwm.ssm._checks import check_ssd_shapes


def _pad_length(a: jax.Array, pad: int) -> jax.Array:
    if pad == 0:
        return a
    widths = [(0, 0)] * a.ndim
    widths[1] = (0, pad)
    return jnp.pad(a, widths)


def ssd_chunked(x, dt, A, B, C, *, chunk_size=64, initial_state=None, reset=None):
    """Chunked SSD; same contract as `lssvwm.ssm.ssd` (which dispatches here)."""
    b, l, h, p, g, n = check_ssd_shapes(x, dt, A, B, C, initial_state, reset, has_length=True)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    f32 = jnp.float32
    r = h // g  # heads per group
    Q = min(chunk_size, l)
    pad = (-l) % Q
    nc = (l + pad) // Q

    # [b, c, q, ...] layout; heads split into (group, head-in-group) so that B and C are shared.
    def chunks(a, *tail):
        return _pad_length(a, pad).reshape(b, nc, Q, *tail)

    x_BCQGRP = chunks(x.astype(f32), g, r, p)
    dt_BCQGR = chunks(dt.astype(f32), g, r)
    B_BCQGN = chunks(B.astype(f32), g, n)
    C_BCQGN = chunks(C.astype(f32), g, n)
    A_GR = A.astype(f32).reshape(g, r)

    cs_BCQGR = jnp.cumsum(dt_BCQGR * A_GR, axis=2)  # within-chunk cumulative log-decay, <= 0
    if reset is None:
        same_episode_QS = jnp.tril(jnp.ones((Q, Q), bool))[None, None]  # [1, 1, q, s]
        no_reset_before_Q = None
        no_reset_after_Q = None
        no_reset_in_chunk = None
    else:
        count_BCQ = jnp.cumsum(chunks(reset.astype(jnp.int32)), axis=2)
        same_episode_QS = jnp.tril(jnp.ones((Q, Q), bool))[None, None] & (
            count_BCQ[:, :, :, None] == count_BCQ[:, :, None, :]
        )  # [b, c, q, s]
        no_reset_before_Q = count_BCQ == 0  # state from the previous chunk still reaches q
        no_reset_after_Q = count_BCQ == count_BCQ[:, :, -1:]  # q's input still reaches chunk end
        no_reset_in_chunk = count_BCQ[:, :, -1] == 0

    # ---- 1. intra-chunk quadratic form -------------------------------------------------------
    CB_BCGQS = jnp.einsum("bcqgn,bcsgn->bcgqs", C_BCQGN, B_BCQGN)
    cs_BCGRQ = jnp.moveaxis(cs_BCQGR, 2, -1)
    segment_BCGRQS = cs_BCGRQ[..., :, None] - cs_BCGRQ[..., None, :]
    mask = same_episode_QS[:, :, None, None]  # broadcast over (g, r)
    decay_BCGRQS = jnp.exp(jnp.where(mask, segment_BCGRQS, -jnp.inf))
    dt_BCGRS = jnp.moveaxis(dt_BCQGR, 2, -1)
    weights_BCGRQS = decay_BCGRQS * CB_BCGQS[:, :, :, None] * dt_BCGRS[..., None, :]
    y_diag_BCQGRP = jnp.einsum("bcgrqs,bcsgrp->bcqgrp", weights_BCGRQS, x_BCQGRP)

    # ---- 2. each chunk's own contribution to its end state ------------------------------------
    to_end_BCQGR = jnp.exp(cs_BCQGR[:, :, -1:] - cs_BCQGR) * dt_BCQGR
    if no_reset_after_Q is not None:
        to_end_BCQGR = jnp.where(no_reset_after_Q[..., None, None], to_end_BCQGR, 0.0)
    chunk_state_BCGRPN = jnp.einsum(
        "bcqgrp,bcqgn->bcgrpn", x_BCQGRP * to_end_BCQGR[..., None], B_BCQGN
    )

    # ---- 3. recurrence over chunks (short: l / Q steps) ---------------------------------------
    chunk_decay_BCGR = jnp.exp(cs_BCQGR[:, :, -1])
    if no_reset_in_chunk is not None:
        chunk_decay_BCGR = jnp.where(no_reset_in_chunk[..., None, None], chunk_decay_BCGR, 0.0)
    if initial_state is None:
        state0 = jnp.zeros((b, g, r, p, n), f32)
    else:
        state0 = initial_state.astype(f32).reshape(b, g, r, p, n)

    def carry_state(state_in, inputs):
        decay_BGR, own_BGRPN = inputs
        return decay_BGR[..., None, None] * state_in + own_BGRPN, state_in

    final_BGRPN, state_in_CBGRPN = jax.lax.scan(
        carry_state,
        state0,
        (jnp.moveaxis(chunk_decay_BCGR, 1, 0), jnp.moveaxis(chunk_state_BCGRPN, 1, 0)),
    )
    state_in_BCGRPN = jnp.moveaxis(state_in_CBGRPN, 0, 1)

    # ---- 4. what the carried-in state contributes to each position ---------------------------
    from_start_BCQGR = jnp.exp(cs_BCQGR)
    if no_reset_before_Q is not None:
        from_start_BCQGR = jnp.where(no_reset_before_Q[..., None, None], from_start_BCQGR, 0.0)
    y_off_BCQGRP = jnp.einsum("bcqgn,bcgrpn->bcqgrp", C_BCQGN, state_in_BCGRPN)
    y_BCQGRP = y_diag_BCQGRP + from_start_BCQGR[..., None] * y_off_BCQGRP

    y = y_BCQGRP.reshape(b, nc * Q, h, p)[:, :l]
    return y.astype(x.dtype), final_BGRPN.reshape(b, h, p, n)
