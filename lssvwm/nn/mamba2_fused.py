"""Fused pieces of the Mamba-2 mixer with hand-written backward passes (memory-traffic savings).

Written with plain autodiff, XLA stores every shifted input of the depthwise conv as a separate
residual for the backward pass, assembles the projection's gradient from padded slices, and keeps
several intermediates of the gated norm. On CPU these elementwise passes cost about as much as
the matmuls. The custom VJPs here keep few residuals and write each gradient once:

  causal_conv_silu   silu(depthwise causal conv) with its carried state and optional tap masks;
                     keeps the pre-activation, not the shifted inputs.
  split_last         slices along the last axis whose gradient is one concatenation.
  gated_rms_norm     rms_norm((y + D x) * silu(z)); the backward recomputes the gated value.

The `*_reference` functions are the obvious autodiff versions; tests compare values and
gradients (tests/nn/test_mamba2_fused.py). Measured effect on the mixer's non-SSD part at the
benchmark shape (batch 4, length 4096, d_model 256, forward + backward, CPU): about -30%.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _shifted(x_BLC, state_BKC, lag: int):
    """Inputs `lag` positions back: [b, L, C] (from the carried state for the first `lag`)."""
    if lag == 0:
        return x_BLC
    K1, L = state_BKC.shape[1], x_BLC.shape[1]
    head = state_BKC[:, K1 - lag :].astype(x_BLC.dtype)
    if lag >= L:
        return head[:, :L]
    return jnp.concatenate([head, x_BLC[:, : L - lag]], axis=1)


def _conv(x_BLC, state_BKC, w_KC, bias_C, masks):
    """Pre-activation conv: out[l] = bias + sum_j w[K-1-j] * mask_j[l] * input[l - j]."""
    K = w_KC.shape[0]
    out = bias_C.astype(x_BLC.dtype)
    for lag in range(K):
        tap = _shifted(x_BLC, state_BKC, lag) * w_KC[K - 1 - lag].astype(x_BLC.dtype)
        if masks is not None and lag > 0:
            tap = tap * masks[lag - 1][..., None]
        out = out + tap
    return out


def causal_conv_silu_reference(x_BLC, state_BKC, w_KC, bias_C, masks=None):
    """silu(conv) by plain autodiff; `masks`: None or a tuple of K-1 [b, L] 0/1 tap masks."""
    return jax.nn.silu(_conv(x_BLC, state_BKC, w_KC, bias_C, masks))


def _silu_grad(c, g):
    s = jax.nn.sigmoid(c)
    return g * s * (1 + c * (1 - s))


@jax.custom_vjp
def _conv_silu(x_BLC, state_BKC, w_KC, bias_C):
    return causal_conv_silu_reference(x_BLC, state_BKC, w_KC, bias_C)


@jax.custom_vjp
def _conv_silu_masked(x_BLC, state_BKC, w_KC, bias_C, masks):
    return causal_conv_silu_reference(x_BLC, state_BKC, w_KC, bias_C, masks)


def _fwd(x_BLC, state_BKC, w_KC, bias_C, masks=None):
    c = _conv(x_BLC, state_BKC, w_KC, bias_C, masks)
    return jax.nn.silu(c), (x_BLC, state_BKC, w_KC, c, masks)


def _bwd(residuals, g_BLC):
    x_BLC, state_BKC, w_KC, c, masks = residuals
    K = w_KC.shape[0]
    # The pre-activation is a residual (not recomputed), and the barrier keeps XLA from sharing
    # the weight-gradient reductions' shifted inputs with the forward conv (CSE), which would
    # make the forward store every shifted input instead of fusing them into one pass.
    x_in, state_in = jax.lax.optimization_barrier((x_BLC, state_BKC))
    dc = _silu_grad(c, g_BLC.astype(c.dtype))
    d_bias = jnp.sum(dc, axis=(0, 1))
    d_w, d_padded = [None] * K, None
    for lag in range(K):
        k = K - 1 - lag
        e = dc if masks is None or lag == 0 else dc * masks[lag - 1][..., None]
        d_w[k] = jnp.sum(e * _shifted(x_in, state_in, lag), axis=(0, 1))
        # Input position m = l + k of [state | x] received w[k] * e[l].
        contribution = jnp.pad(e * w_KC[k].astype(e.dtype), ((0, 0), (k, K - 1 - k), (0, 0)))
        d_padded = contribution if d_padded is None else d_padded + contribution
    d_state = d_padded[:, : K - 1].astype(state_BKC.dtype)
    d_x = d_padded[:, K - 1 :].astype(x_BLC.dtype)
    grads = (d_x, d_state, jnp.stack(d_w).astype(w_KC.dtype), d_bias.astype(c.dtype))
    if masks is None:
        return grads
    return (*grads, tuple(jnp.zeros_like(m) for m in masks))


_conv_silu.defvjp(lambda *a: _fwd(*a), lambda res, g: _bwd(res, g))
_conv_silu_masked.defvjp(_fwd, _bwd)


def causal_conv_silu(x_BLC, state_BKC, w_KC, bias_C, masks=None):
    """silu(depthwise causal conv) over [b, L, C] after the K-1 carried inputs in `state_BKC`.

    Args:
      x_BLC: [b, L, C] inputs.
      state_BKC: [b, K-1, C] the inputs before x (oldest first).
      w_KC: [K, C] taps; w[K-1] multiplies the current input, w[K-1-j] the one j back.
      bias_C: [C].
      masks: None, or K-1 arrays [b, L] (0/1) where masks[j-1][b, l] says whether output l may
        read the input j positions back (resets cut the conv).
    """
    if masks is None:
        return _conv_silu(x_BLC, state_BKC, w_KC, bias_C)
    masks = tuple(m.astype(x_BLC.dtype) for m in masks)
    return _conv_silu_masked(x_BLC, state_BKC, w_KC, bias_C, masks)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def split_last(a, sizes: tuple[int, ...]):
    """Splits the last axis into pieces of `sizes`; the gradient is one concatenation."""
    bounds = [0]
    for size in sizes:
        bounds.append(bounds[-1] + size)
    if bounds[-1] != a.shape[-1]:
        raise ValueError(f"sizes {sizes} do not add up to the last axis {a.shape[-1]}")
    return tuple(a[..., lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:], strict=True))


def _split_fwd(a, sizes):
    return split_last(a, sizes), None


def _split_bwd(sizes, _, grads):
    return (jnp.concatenate(grads, axis=-1),)


split_last.defvjp(_split_fwd, _split_bwd)


def gated_rms_norm_reference(y_BLHP, x_BLHP, z_BLE, D_H, eps):
    """rms_norm((y + D x) * silu(z)) over E = H * P, without scale, by plain autodiff.

    Shapes: y, x [..., h, p]; z [..., h * p]; D [h]."""
    f32 = jnp.float32
    v = y_BLHP.astype(f32) + D_H[:, None] * x_BLHP.astype(f32)
    w = v.reshape(z_BLE.shape) * jax.nn.silu(z_BLE.astype(f32))
    return w * jax.lax.rsqrt(jnp.mean(jnp.square(w), axis=-1, keepdims=True) + eps)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def gated_rms_norm(y_BLHP, x_BLHP, z_BLE, D_H, eps: float):
    """rms_norm((y + D x) * silu(z)) in float32 (the D skip, gate and norm of Mamba-2; the norm's
    scale is applied by the caller). The backward recomputes the gated value in one fused pass and
    keeps only the per-token inverse RMS as an extra residual."""
    return gated_rms_norm_reference(y_BLHP, x_BLHP, z_BLE, D_H, eps)


def _norm_fwd(y_BLHP, x_BLHP, z_BLE, D_H, eps):
    f32 = jnp.float32
    v = y_BLHP.astype(f32) + D_H[:, None] * x_BLHP.astype(f32)
    w = v.reshape(z_BLE.shape) * jax.nn.silu(z_BLE.astype(f32))
    r = jax.lax.rsqrt(jnp.mean(jnp.square(w), axis=-1, keepdims=True) + eps)
    return w * r, (y_BLHP, x_BLHP, z_BLE, D_H, r)


def _norm_bwd(eps, residuals, g_BLE):
    del eps
    f32 = jnp.float32
    # Barrier: recompute here rather than let XLA store the forward's intermediates (CSE).
    y_BLHP, x_BLHP, z_BLE, D_H, r = jax.lax.optimization_barrier(residuals)
    x32 = x_BLHP.astype(f32)
    z32 = z_BLE.astype(f32)
    v = (y_BLHP.astype(f32) + D_H[:, None] * x32).reshape(z_BLE.shape)
    gate = jax.nn.silu(z32)
    w = v * gate
    g = g_BLE.astype(f32)
    # o = w r with r = (mean(w^2) + eps)^-1/2:  dw = r g - w r^3 mean(g w).
    dw = r * g - w * (r**3) * jnp.mean(g * w, axis=-1, keepdims=True)
    dv = (dw * gate).reshape(x_BLHP.shape)
    sig = jax.nn.sigmoid(z32)
    dz = dw * v * sig * (1 + z32 * (1 - sig))
    head_axis = dv.ndim - 2  # [..., h, p]
    dD = jnp.sum(dv * x32, axis=tuple(i for i in range(dv.ndim) if i != head_axis))
    return (
        dv.astype(y_BLHP.dtype),
        (dv * D_H[:, None]).astype(x_BLHP.dtype),
        dz.astype(z_BLE.dtype),
        dD.astype(D_H.dtype),
    )


gated_rms_norm.defvjp(_norm_fwd, _norm_bwd)
