"""bfloat16 compute in the two sequence mixers' kernels against their float32 results, and the
attention kernel choice (`model.attention_impl` -> `jax.nn.dot_product_attention`).

Tolerances are in units of bfloat16's precision, u = 2**-8 (8 significant bits: rounding a value
once moves it by at most u times its magnitude):
- the SSD scan with bfloat16 inputs equals the float32 scan of the same (bfloat16-rounded)
  inputs rounded once: y within u (relative), the final state (float32) within 1e-6 -- the scan
  accumulates in float32, so bfloat16 costs only the rounding of inputs and output;
- against the float32 scan of the unrounded inputs: max |error| <= 2u * max |y| (measured
  0.29% = 0.75u at l = 200, h = 4, p = n = 16) and <= 4u * max |state| for the final state
  (measured 0.90% = 2.3u): what rounding the inputs alone costs;
- attention with bfloat16 q, k, v (logits accumulated and softmax taken in float32, the
  weights rounded to bfloat16 before the product with v): max |error| <= 4u * max |out| against
  the float32 reference (measured 0.51% = 1.3u sliding, 0.62% = 1.6u full causal).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lssvwm.nn.attention_kernels import (
    full_causal_attention,
    reference_attention,
    resolve_attention_implementation,
    windowed_attention,
)
from lssvwm.nn.attention_window import FrameWindow
from lssvwm.ssm import ssd, ssd_step

U = 2.0**-8  # bfloat16's unit roundoff
BF16 = jnp.bfloat16


def _rounded(a):
    """`a` rounded to bfloat16 and back: the values a bfloat16 computation actually sees."""
    return np.asarray(jnp.asarray(a).astype(BF16).astype(jnp.float32))


def _max_error(got, want) -> tuple[float, float]:
    got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    return float(np.abs(got - want).max()), float(np.abs(want).max())


# ---- SSD -------------------------------------------------------------------------------------


def _ssd_inputs(seed=0, b=2, l=200, h=4, p=16, g=1, n=16):
    """Inputs at the model's scales: dt = softplus(N(-2, 1)) (~0.03..1), -A in [1, 16] (the
    mixer's init range), B and C ~ N(0, 1/n), x ~ N(0, 1); a carried state and two resets."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, l, h, p)).astype(np.float32)
    dt = np.log1p(np.exp(rng.standard_normal((b, l, h)) - 2.0)).astype(np.float32)
    A = -np.exp(rng.uniform(0.0, np.log(16.0), h)).astype(np.float32)
    B = (rng.standard_normal((b, l, g, n)) / np.sqrt(n)).astype(np.float32)
    C = (rng.standard_normal((b, l, g, n)) / np.sqrt(n)).astype(np.float32)
    state = (0.3 * rng.standard_normal((b, h, p, n))).astype(np.float32)
    reset = np.zeros((b, l), np.int32)
    reset[0, l // 3] = reset[1, 3 * l // 4] = 1  # a new episode inside the window (l > 1)
    return (x, dt, A, B, C), state, reset


_ssd = jax.jit(ssd, static_argnames=("chunk_size",))


def test_ssd_in_bfloat16_is_the_float32_scan_rounded_once():
    inputs, state, reset = _ssd_inputs()
    y16, final16 = _ssd(
        *(a.astype(BF16) for a in map(jnp.asarray, inputs)),
        chunk_size=64,
        initial_state=state,
        reset=reset,
    )
    assert y16.dtype == BF16 and final16.dtype == jnp.float32
    y_rounded, final_rounded = _ssd(
        *map(_rounded, inputs), chunk_size=64, initial_state=state, reset=reset
    )
    np.testing.assert_allclose(np.asarray(y16, np.float32), y_rounded, rtol=U, atol=1e-6)
    np.testing.assert_allclose(final16, final_rounded, rtol=1e-6, atol=1e-6)

    y32, final32 = _ssd(*inputs, chunk_size=64, initial_state=state, reset=reset)
    error, scale = _max_error(y16, y32)
    assert error <= 2 * U * scale, (error, scale)
    error, scale = _max_error(final16, final32)
    assert error <= 4 * U * scale, (error, scale)


def test_ssd_step_in_bfloat16_keeps_a_float32_state():
    (x, dt, A, B, C), state, _ = _ssd_inputs(seed=1, l=1)
    inputs = (x[:, 0], dt[:, 0], A, B[:, 0], C[:, 0])
    step = jax.jit(ssd_step)
    y16, state16 = step(state, *(jnp.asarray(a).astype(BF16) for a in inputs))
    assert y16.dtype == BF16 and state16.dtype == jnp.float32
    y32, state32 = step(state, *inputs)
    error, scale = _max_error(state16, state32)
    assert error <= 4 * U * scale, (error, scale)
    error, scale = _max_error(y16, y32)
    assert error <= 4 * U * scale, (error, scale)


def test_a_bfloat16_cumulative_decay_would_be_far_off():
    """Why `lssvwm.ssm` keeps the within-chunk cumulative log-decay in float32: summed in
    bfloat16 over a 64-token chunk it is off by ~0.2 (measured 0.23 at |cs| ~ 46), i.e. the
    decays exp(cs_i - cs_j) by ~20%, far beyond the rounding of any single input."""
    (_, dt, A, _, _), _, _ = _ssd_inputs()
    log_decay = dt[0, :64, 0] * A[0]
    exact = np.cumsum(log_decay.astype(np.float64))
    in_bf16 = np.asarray(jnp.cumsum(jnp.asarray(log_decay).astype(BF16)), np.float64)
    in_f32 = np.asarray(jnp.cumsum(jnp.asarray(log_decay)), np.float64)
    assert np.abs(in_f32 - exact).max() < 1e-4
    assert np.abs(in_bf16 - exact).max() > 0.05  # exp(0.05) - 1 = 5% on a decay factor


# ---- attention -------------------------------------------------------------------------------

FRAMES, TOKENS, HEADS, HEAD_DIM = 12, 16, 4, 32
ROPE_BASE = 10_000.0


def _qkv(seed=0):
    rng = np.random.default_rng(seed)
    shape = (2, FRAMES, TOKENS, HEADS, HEAD_DIM)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]


@pytest.mark.parametrize("window", [FrameWindow(4), FrameWindow(4, chunk=2), FrameWindow(None)])
def test_attention_in_bfloat16_stays_within_4u_of_float32(window):
    q, k, v = _qkv()
    if window.is_full:
        kernel = lambda q, k, v: full_causal_attention(q, k, v, rope_base=ROPE_BASE)
    else:
        kernel = lambda q, k, v: windowed_attention(q, k, v, window, rope_base=ROPE_BASE)
    reference = jax.jit(lambda q, k, v: reference_attention(q, k, v, window, rope_base=ROPE_BASE))(
        q, k, v
    )
    out16 = jax.jit(kernel)(*(jnp.asarray(a).astype(BF16) for a in (q, k, v)))
    assert out16.dtype == BF16
    error, scale = _max_error(out16, reference)
    assert error <= 4 * U * scale, (error, scale)


# ---- which kernel ----------------------------------------------------------------------------

QUALIFIED = dict(dtype=BF16, head_dim=64, tokens_per_frame=16)


@pytest.mark.parametrize(
    "requested, platform, inputs, expected",
    [
        ("xla", "cuda", QUALIFIED, "xla"),
        ("auto", "cuda", QUALIFIED, "cudnn"),
        ("auto", "cpu", QUALIFIED, "xla"),
        ("auto", "tpu", QUALIFIED, "xla"),
        ("auto", "rocm", QUALIFIED, "xla"),
        ("auto", "cuda", {**QUALIFIED, "dtype": jnp.float32}, "xla"),  # cuDNN: half precision
        ("auto", "cuda", {**QUALIFIED, "head_dim": 12}, "xla"),  # not a multiple of 8
        ("auto", "cuda", {**QUALIFIED, "head_dim": 256}, "xla"),  # over 128
        ("auto", "cuda", {**QUALIFIED, "tokens_per_frame": 9}, "xla"),  # odd lengths
        ("cudnn", "cuda", {**QUALIFIED, "dtype": jnp.float16}, "cudnn"),
    ],
)
def test_auto_picks_cudnn_only_where_it_can_run(requested, platform, inputs, expected):
    got = resolve_attention_implementation(requested, platform=platform, **inputs)
    assert got == expected


def test_cudnn_where_it_cannot_run_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"^attention_impl 'cudnn' needs an NVIDIA GPU.* cpu"):
        resolve_attention_implementation("cudnn", platform="cpu", **QUALIFIED)
    with pytest.raises(ValueError, match=r"'cudnn' needs a bfloat16 or float16 compute dtype"):
        resolve_attention_implementation(
            "cudnn", platform="cuda", **{**QUALIFIED, "dtype": jnp.float32}
        )
    with pytest.raises(ValueError, match=r"model.attention_impl must be one of"):
        resolve_attention_implementation("flash", key="model.attention_impl", **QUALIFIED)
    if jax.default_backend() == "cpu":  # this process: the platform found by itself
        with pytest.raises(ValueError, match="the model is traced for cpu"):
            resolve_attention_implementation("cudnn", **QUALIFIED)
        assert resolve_attention_implementation("auto", **QUALIFIED) == "xla"


def test_xla_kernel_named_or_not_is_the_same_computation():
    """implementation=None (what the layers passed before `attention_impl`) and "xla" agree
    bitwise, so "auto" resolving to "xla" on CPU changes no result."""
    q, k, v = _qkv(1)
    window = FrameWindow(4)
    outs = [
        jax.jit(
            lambda q, k, v, impl=impl: windowed_attention(
                q, k, v, window, rope_base=ROPE_BASE, implementation=impl
            )
        )(q, k, v)
        for impl in (None, "xla")
    ]
    np.testing.assert_array_equal(outs[0], outs[1])
