"""Blocked frame-local attention kernels against the dense-mask reference; rotary embedding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lssvwm.nn.attention_kernels import (
    dense_frame_mask,
    dense_masked_attention,
    full_causal_attention,
    reference_attention,
    windowed_attention,
)
from lssvwm.nn.attention_window import FrameWindow
from lssvwm.nn.rope import apply_rope

BATCH, TOKENS, HEADS, HEAD_DIM = 2, 3, 2, 8
ROPE_BASE = 100.0  # small base, so that every rotary pair turns noticeably within a few frames


def _qkv(frames, seed=0):
    # numpy inputs: no per-op compiles of eager jax.random calls.
    rng = np.random.default_rng(seed)
    shape = (BATCH, frames, TOKENS, HEADS, HEAD_DIM)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]


def _reference(window):
    return jax.jit(lambda q, k, v: reference_attention(q, k, v, window, rope_base=ROPE_BASE))


@pytest.mark.parametrize(
    "window, query_block, frames",
    [
        (FrameWindow(3), 4, 13),  # ragged: 13 frames in blocks of 4, lookback 3 rounded up to 4
        (FrameWindow(0), 3, 7),  # a frame sees only itself
        (FrameWindow(4, chunk=2), 4, 14),  # chunked, ragged in query blocks
        (FrameWindow(2, chunk=2), 2, 8),  # chunked with no previous chunk (empty cache)
    ],
)
def test_windowed_matches_dense_reference(window, query_block, frames):
    q, k, v = _qkv(frames)
    blocked = jax.jit(
        lambda q, k, v: windowed_attention(
            q, k, v, window, rope_base=ROPE_BASE, query_block=query_block
        )
    )
    np.testing.assert_allclose(blocked(q, k, v), _reference(window)(q, k, v), atol=2e-6, rtol=1e-5)


def test_full_causal_matches_dense_reference():
    q, k, v = _qkv(13)
    blocked = jax.jit(
        lambda q, k, v: full_causal_attention(q, k, v, rope_base=ROPE_BASE, query_block=4)
    )
    reference = _reference(FrameWindow(None))(q, k, v)
    np.testing.assert_allclose(blocked(q, k, v), reference, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("window", [FrameWindow(3), FrameWindow(None)])
def test_gradients_match_dense_reference(window):
    """Training differentiates the blocked kernels (full causal rematerialises its blocks)."""
    q, k, v = _qkv(9, seed=2)
    weights = np.random.default_rng(3).standard_normal(q.shape).astype(np.float32)

    def grads(attention):
        loss = lambda q, k, v: jnp.sum(attention(q, k, v) * weights)
        return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v)

    if window.is_full:
        blocked = lambda q, k, v: full_causal_attention(q, k, v, rope_base=ROPE_BASE, query_block=4)
    else:
        blocked = lambda q, k, v: windowed_attention(
            q, k, v, window, rope_base=ROPE_BASE, query_block=4
        )
    reference = lambda q, k, v: reference_attention(q, k, v, window, rope_base=ROPE_BASE)
    for got, want in zip(grads(blocked), grads(reference), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)


def test_dense_masked_baseline_matches_reference():
    window = FrameWindow(3)
    q, k, v = _qkv(9)
    dense = jax.jit(lambda q, k, v: dense_masked_attention(q, k, v, window, rope_base=ROPE_BASE))
    np.testing.assert_allclose(dense(q, k, v), _reference(window)(q, k, v), atol=2e-6, rtol=1e-5)


def test_bfloat16_inputs_stay_close_to_float32_reference():
    window = FrameWindow(3)
    q, k, v = _qkv(13)
    blocked_bf16 = jax.jit(
        lambda q, k, v: windowed_attention(
            *(a.astype(jnp.bfloat16) for a in (q, k, v)), window, rope_base=ROPE_BASE, query_block=4
        )
    )
    out = blocked_bf16(q, k, v)
    assert out.dtype == jnp.bfloat16
    reference = _reference(window)(q, k, v)
    np.testing.assert_allclose(out.astype(jnp.float32), reference, atol=0.05)


def test_dense_frame_mask_pattern():
    # Sliding k=2: frame 3 sees frames 1, 2, 3; every token of a frame shares the row.
    mask = dense_frame_mask(FrameWindow(2), frames=5, tokens=2)
    frame_row = mask[3 * 2].reshape(5, 2)
    np.testing.assert_array_equal(frame_row.all(axis=1), [False, True, True, True, False])
    # Chunked k=4, c=2: frame 2 (chunk 1) sees chunks 0 and 1, including frame 3 after it.
    chunked = dense_frame_mask(FrameWindow(4, chunk=2), frames=6, tokens=1)
    np.testing.assert_array_equal(chunked[2], [True, True, True, True, False, False])
    np.testing.assert_array_equal(chunked[5], [False, False, True, True, True, True])


def test_rope_depends_only_on_frame_difference():
    q, k = np.random.default_rng(1).standard_normal((2, 1, 1, 2, 8)).astype(np.float32)

    def logit(i, j):
        qi = apply_rope(q, np.array([i]), base=ROPE_BASE)
        kj = apply_rope(k, np.array([j]), base=ROPE_BASE)
        return jnp.sum(qi * kj)

    np.testing.assert_allclose(logit(7, 3), logit(4, 0), rtol=1e-5)
    np.testing.assert_allclose(logit(-2, -6), logit(4, 0), rtol=1e-5)
    assert abs(float(logit(4, 0)) - float(logit(5, 0))) > 1e-3  # and it does depend on it
    np.testing.assert_allclose(
        jnp.linalg.norm(apply_rope(q, np.array([5]), base=ROPE_BASE)), jnp.linalg.norm(q), rtol=1e-6
    )


def test_kernel_errors():
    q, k, v = _qkv(5)
    with pytest.raises(ValueError, match="whole chunks"):
        windowed_attention(q, k, v, FrameWindow(4, chunk=2), rope_base=ROPE_BASE)
    with pytest.raises(ValueError, match="multiple of the window's unit"):
        windowed_attention(
            q[:, :4], k[:, :4], v[:, :4], FrameWindow(4, 2), rope_base=1e4, query_block=3
        )
    with pytest.raises(ValueError, match="same shape"):
        windowed_attention(q, k[:, :4], v, FrameWindow(2), rope_base=ROPE_BASE)
    with pytest.raises(ValueError, match="even head_dim"):
        apply_rope(q[..., :3], np.arange(5), base=ROPE_BASE)
