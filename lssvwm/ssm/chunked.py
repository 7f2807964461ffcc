"""Chunked state-space-duality (SSD) scan: exact, matmul-shaped Mamba-2 over long sequences.

The sequence is cut into chunks of Q tokens. Inside a chunk the recurrence is written as a masked
quadratic form (attention-like, Q x Q); across chunks only the state is carried. Per chunk, with
cs = the within-chunk inclusive cumsum of the log-decays a = dt * A:

    y_diag[q]  = sum_{s<=q} exp(cs[q] - cs[s]) * (C[q] . B[s]) * dt[s] * x[s]
    y_off[q]   = exp(cs[q]) * (C[q] @ S_in)                        S_in: state entering the chunk
    S_out      = exp(cs[Q-1]) * S_in + sum_s exp(cs[Q-1] - cs[s]) * dt[s] * outer(x[s], B[s])

Stability: exp is only ever taken of a masked difference `cs[q] - cs[s]` (q >= s, so <= 0) or of
`cs[q]` itself (<= 0); masks are applied *before* exp, so large decays underflow to 0 instead of
overflowing, in values and gradients. Resets use an integer running count: a source s reaches a
target q only if no reset lies in (s, q].

Schedules of the same per-chunk math (all exact, all tested), chosen by `chunks_per_step`:
  * 1 (the CPU default): a `lax.scan` with one chunk per step computes that chunk's output and
    advances the state, so a chunk's intermediates stay in cache.
  * None: the local parts of all chunks as large batched matmuls, a short scan over the chunk
    states, then all read-outs at once: the standard SSD schedule for GPU/TPU. On CPU it is
    bound by memory traffic over its [chunks, ...] intermediates.
  * K > 1: a scan over groups of K chunks, each group in the parallel form (between the two).
The state is kept transposed inside, [n, heads-in-group, p], so both the chunk-state product
`B^T @ x` and the read-out `C @ S` are plain row-major matmuls without a copy of x.

Ragged lengths are padded with dt = 0 (identity decay, no input), which leaves the outputs and
the final state unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from lssvwm.ssm._checks import check_ssd_shapes


class _Chunks(NamedTuple):
    """Inputs cut into chunks: big arrays token-major, per-token scalars head-major.

    Suffix letters here (the glossary is lssvwm's docstring): J chunk, Q token within the chunk
    (the target), S source token, H heads, G groups, R = H / G heads per group, N state size,
    P head dim, M = R * P the two merged; K chunks per scan step. The SSM matrices keep
    their names B and C."""

    x_BJQHP: jax.Array
    B_BJQGN: jax.Array
    C_BJQGN: jax.Array
    cs_BJHQ: jax.Array  # within-chunk cumulative log-decay (<= 0)
    dt_BJHQ: jax.Array
    from_start_BJHQ: jax.Array  # how much of the carried-in state reaches q (0 after a reset)
    to_end_BJHQ: jax.Array  # weight of q's input in the chunk's end state (0 before a reset)
    chunk_decay_BJH: jax.Array  # decay of the carried-in state across the whole chunk
    episode_BJQ: jax.Array | None  # running reset count; None when there are no resets


def _pad_length(a: jax.Array, pad: int) -> jax.Array:
    if pad == 0:
        return a
    widths = [(0, 0)] * a.ndim
    widths[1] = (0, pad)
    return jnp.pad(a, widths)


def _cut_into_chunks(x, dt, A, B, C, reset, Q: int, nc: int) -> _Chunks:
    """Pads the length to nc * Q (dt = 0: no change) and cuts it into nc chunks of Q."""
    b, l, h, p = x.shape
    g, n = B.shape[2:]
    f32 = jnp.float32
    pad = nc * Q - l

    def chunks(a, *tail):
        return _pad_length(a, pad).reshape(b, nc, Q, *tail)

    dt_BJHQ = jnp.swapaxes(chunks(dt.astype(f32), h), 2, 3)
    cs_BJHQ = jnp.cumsum(dt_BJHQ * A.astype(f32)[:, None], axis=-1)
    from_start = jnp.exp(cs_BJHQ)
    to_end = jnp.exp(cs_BJHQ[..., -1:] - cs_BJHQ) * dt_BJHQ
    chunk_decay = jnp.exp(cs_BJHQ[..., -1])
    episode_BJQ = None
    if reset is not None:
        episode_BJQ = jnp.cumsum(chunks(reset.astype(jnp.int32)), axis=2)
        from_start = jnp.where((episode_BJQ == 0)[:, :, None], from_start, 0.0)
        reaches_end = episode_BJQ == episode_BJQ[:, :, -1:]
        to_end = jnp.where(reaches_end[:, :, None], to_end, 0.0)
        chunk_decay = jnp.where((episode_BJQ[:, :, -1] == 0)[..., None], chunk_decay, 0.0)
    return _Chunks(
        x_BJQHP=chunks(x.astype(f32), h, p),
        B_BJQGN=chunks(B.astype(f32), g, n),
        C_BJQGN=chunks(C.astype(f32), g, n),
        cs_BJHQ=cs_BJHQ,
        dt_BJHQ=dt_BJHQ,
        from_start_BJHQ=from_start,
        to_end_BJHQ=to_end,
        chunk_decay_BJH=chunk_decay,
        episode_BJQ=episode_BJQ,
    )


def _chunk_local(chunk: _Chunks):
    """One chunk's own output and its own contribution to the end state.

    `chunk` holds one chunk per field (the chunk axis removed: x [b, Q, h, p], cs [b, h, Q], ...).
    Returns y_diag [b, h, Q, p] (head-major) and own_state [b, g, n, r, p].
    """
    b, Q, h, p = chunk.x_BJQHP.shape
    g, n = chunk.B_BJQGN.shape[-2:]
    r = h // g
    C_BGQN = jnp.swapaxes(chunk.C_BJQGN, 1, 2)
    B_BGQN = jnp.swapaxes(chunk.B_BJQGN, 1, 2)
    CB_BGQS = jnp.matmul(C_BGQN, jnp.swapaxes(B_BGQN, -1, -2))
    reaches_QS = jnp.tril(jnp.ones((Q, Q), bool))
    if chunk.episode_BJQ is not None:
        episode_BQ = chunk.episode_BJQ
        reaches_QS = reaches_QS & (episode_BQ[:, :, None] == episode_BQ[:, None, :])
        reaches_QS = reaches_QS[:, None, None]  # [b, 1, 1, Q, S]
    cs_BGRQ = chunk.cs_BJHQ.reshape(b, g, r, Q)
    segment_BGRQS = cs_BGRQ[..., :, None] - cs_BGRQ[..., None, :]
    weights_BGRQS = (
        jnp.exp(jnp.where(reaches_QS, segment_BGRQS, -jnp.inf))
        * CB_BGQS[:, :, None]
        * chunk.dt_BJHQ.reshape(b, g, r, 1, Q)
    )
    x_BGRQP = jnp.swapaxes(chunk.x_BJQHP, 1, 2).reshape(b, g, r, Q, p)
    y_diag_BHQP = jnp.matmul(weights_BGRQS, x_BGRQP).reshape(b, h, Q, p)
    # Own contribution to the end state: B^T @ (to_end * x), laid out [n, (r, p)].
    x_in_BGRQP = x_BGRQP * chunk.to_end_BJHQ.reshape(b, g, r, Q, 1)
    x_in_BGQM = jnp.moveaxis(x_in_BGRQP, 3, 2).reshape(b, g, Q, r * p)
    own_BGNM = jnp.matmul(jnp.swapaxes(B_BGQN, -1, -2), x_in_BGQM)
    return y_diag_BHQP, own_BGNM.reshape(b, g, n, r, p)


def _chunk_readout(chunk: _Chunks, y_diag_BHQP, state_in_BGNRP):
    """Adds what the carried-in state contributes; returns the chunk's y [b, Q, h, p]."""
    b, g, n, r, p = state_in_BGNRP.shape
    Q = chunk.x_BJQHP.shape[1]
    C_BGQN = jnp.swapaxes(chunk.C_BJQGN, 1, 2)
    y_off_BGQRP = jnp.matmul(C_BGQN, state_in_BGNRP.reshape(b, g, n, r * p)).reshape(b, g, Q, r, p)
    y_off_BHQP = jnp.moveaxis(y_off_BGQRP, 2, 3).reshape(b, g * r, Q, p)
    y_BHQP = y_diag_BHQP + chunk.from_start_BJHQ[..., None] * y_off_BHQP
    return jnp.swapaxes(y_BHQP, 1, 2)


def _advance_state(state_BGNRP, chunk_decay_BH, own_BGNRP):
    b, g, _, r, _ = state_BGNRP.shape
    return chunk_decay_BH.reshape(b, g, 1, r, 1) * state_BGNRP + own_BGNRP


def _parallel_schedule(chunks: _Chunks, state0_BGNRP):
    """All chunks at once: local parts batched, a short scan over states, read-outs batched."""
    over_chunks = lambda fn: jax.vmap(fn, in_axes=1, out_axes=1)
    y_diag_BJHQP, own_BJGNRP = over_chunks(_chunk_local)(chunks)

    def carry_state(state_in, inputs):
        decay_BH, own = inputs
        return _advance_state(state_in, decay_BH, own), state_in

    final_state, state_in_JBGNRP = jax.lax.scan(
        carry_state,
        state0_BGNRP,
        (jnp.moveaxis(chunks.chunk_decay_BJH, 1, 0), jnp.moveaxis(own_BJGNRP, 1, 0)),
    )
    state_in_BJGNRP = jnp.moveaxis(state_in_JBGNRP, 0, 1)
    readout = jax.vmap(_chunk_readout, in_axes=(1, 1, 1), out_axes=1)
    return readout(chunks, y_diag_BJHQP, state_in_BJGNRP), final_state


def _one_chunk(chunk: _Chunks, state_BGNRP):
    """The scan body for a single chunk (fields without the chunk axis)."""
    y_diag, own = _chunk_local(chunk)
    y_chunk = _chunk_readout(chunk, y_diag, state_BGNRP)
    return _advance_state(state_BGNRP, chunk.chunk_decay_BJH, own), y_chunk


def _grouped_schedule(chunks: _Chunks, state0_BGNRP, chunks_per_step: int):
    """A `lax.scan` over groups of `chunks_per_step` chunks, each group in parallel form.

    A group's intermediates stay in cache, which is what makes this fast on CPU, while groups of
    several chunks amortise the per-step cost of small matmuls. A scan over `xs` (rather than a
    fori_loop slicing closed-over arrays) keeps reverse mode linear, and each step is
    rematerialised in reverse mode: recomputing a group's Q x Q weights is cheaper than writing
    and re-reading them (both measured in experiments/bench_ssd).
    """
    K = chunks_per_step
    nc = chunks.x_BJQHP.shape[1]

    def group_major(a):  # [b, nc, ...] -> [nc / K, b, (K,) ...]
        if a is None:
            return None
        a = jnp.moveaxis(a.reshape(a.shape[0], nc // K, K, *a.shape[2:]), 1, 0)
        return a[:, :, 0] if K == 1 else a

    def body(state, group):
        if K == 1:
            return _one_chunk(group, state)
        y_BKQHP, state = _parallel_schedule(group, state)
        return state, y_BKQHP

    groups = _Chunks(*(group_major(a) for a in chunks))
    final_state, y_steps = jax.lax.scan(jax.checkpoint(body), state0_BGNRP, groups)
    y_grouped = jnp.moveaxis(y_steps, 0, 1)  # [b, nc / K, (K,) Q, h, p]
    return y_grouped.reshape(y_grouped.shape[0], nc, *y_grouped.shape[-3:]), final_state


def ssd_chunked(
    x, dt, A, B, C, *, chunk_size=64, initial_state=None, reset=None, chunks_per_step=1
):
    """Chunked SSD; same contract as `lssvwm.ssm.ssd`.

    `chunks_per_step` chunks are evaluated together per step of a scan over the sequence
    (`_grouped_schedule`); None evaluates all chunks at once (`_parallel_schedule`), the standard
    SSD schedule for accelerators. Every choice gives the same result.
    """
    b, l, h, p, g, n = check_ssd_shapes(x, dt, A, B, C, initial_state, reset, has_length=True)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if chunks_per_step is not None and chunks_per_step < 1:
        raise ValueError(f"chunks_per_step must be >= 1 or None, got {chunks_per_step}")
    r = h // g
    Q = min(chunk_size, l)
    num_chunks = -(-l // Q)
    K = num_chunks if chunks_per_step is None else min(chunks_per_step, num_chunks)
    # Pad to whole groups of K chunks with dt = 0: identity decay and no input.
    chunks = _cut_into_chunks(x, dt, A, B, C, reset, Q, -(-num_chunks // K) * K)
    if initial_state is None:
        state0_BGNRP = jnp.zeros((b, g, n, r, p), jnp.float32)
    else:  # [b, h, p, n] -> [b, g, n, r, p]
        state0_BGNRP = jnp.moveaxis(initial_state.astype(jnp.float32).reshape(b, g, r, p, n), -1, 2)
    if chunks_per_step is None:
        y_BJQHP, final_BGNRP = _parallel_schedule(chunks, state0_BGNRP)
    else:
        y_BJQHP, final_BGNRP = _grouped_schedule(chunks, state0_BGNRP, K)
    y = y_BJQHP.reshape(b, -1, h, p)[:, :l]
    final_state = jnp.moveaxis(final_BGNRP, 2, -1).reshape(b, h, p, n)
    return y.astype(x.dtype), final_state
