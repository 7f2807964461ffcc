"""Hand-written backward passes of the fused mixer pieces against plain autodiff."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lssvwm.nn.mamba2_fused import (
    causal_conv_silu,
    causal_conv_silu_reference,
    gated_rms_norm,
    gated_rms_norm_reference,
    split_last,
)


def _random(shape, seed):
    return jax.random.normal(jax.random.key(seed), shape)


def _grads(fn, args, argnums, seed=99):
    """Value and gradients of <fn(*args), random cotangent> (a generic linear functional)."""
    out = fn(*args)
    cotangent = _random(out.shape, seed)
    loss = lambda *a: jnp.sum(fn(*a) * cotangent)
    return out, jax.grad(loss, argnums=argnums)(*args)


@pytest.mark.parametrize("length,masked", [(7, False), (7, True), (2, True)], ids=str)
def test_causal_conv_silu_matches_autodiff(length, masked):
    """Length 2 < K - 1 = 3: the taps read the carried state past the start of x."""
    b, K, C = 2, 4, 5
    args = [
        _random((b, length, C), 0),
        _random((b, K - 1, C), 1),
        _random((K, C), 2),
        _random((C,), 3),
    ]
    masks = None
    if masked:
        keep = jax.random.bernoulli(jax.random.key(4), 0.6, (K - 1, b, length))
        masks = tuple(keep.astype(jnp.float32))
    fused = jax.jit(lambda *a: causal_conv_silu(*a, masks=masks))
    reference = jax.jit(lambda *a: causal_conv_silu_reference(*a, masks=masks))
    y, g = _grads(fused, args, (0, 1, 2, 3))
    y_ref, g_ref = _grads(reference, args, (0, 1, 2, 3))
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)
    for got, want in zip(g, g_ref, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_gated_rms_norm_matches_autodiff():
    h, p = 3, 4
    args = [
        _random((2, 5, h, p), 0),
        _random((2, 5, h, p), 1),
        _random((2, 5, h * p), 2),
        _random((h,), 3),
    ]
    fused = jax.jit(lambda *a: gated_rms_norm(*a, 1e-5))
    reference = jax.jit(lambda *a: gated_rms_norm_reference(*a, 1e-5))
    y, g = _grads(fused, args, (0, 1, 2, 3))
    y_ref, g_ref = _grads(reference, args, (0, 1, 2, 3))
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)
    for got, want in zip(g, g_ref, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_split_last_gradient_is_the_concatenation():
    a = _random((2, 3, 7), 0)
    pieces = split_last(a, (2, 4, 1))
    assert [piece.shape[-1] for piece in pieces] == [2, 4, 1]
    weights = [_random(piece.shape, i + 1) for i, piece in enumerate(pieces)]
    loss = lambda a: sum(
        jnp.sum(w * q) for w, q in zip(weights, split_last(a, (2, 4, 1)), strict=True)
    )
    grad = jax.grad(loss)(a)
    np.testing.assert_array_equal(grad, jnp.concatenate(weights, axis=-1))
    with pytest.raises(ValueError, match="do not add up"):
        split_last(a, (2, 2))
