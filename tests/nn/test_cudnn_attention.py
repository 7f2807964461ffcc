"""cuDNN's fused attention (`implementation="cudnn"`) against XLA's on the same bfloat16 inputs,
forward and gradients, for every attention pass the models use: windowed (sliding and chunked),
full causal, and the streaming step against a cache. Runs only where JAX has an NVIDIA GPU
(skipped elsewhere, CI included); on a lent GPU: `pytest tests/nn/test_cudnn_attention.py`.

Both kernels take the logits and softmax in float32 and round the weights to bfloat16 before the
product with v, but in different orders of summation: they agree to a few units of bfloat16's
roundoff u = 2**-8 relative to the output's magnitude, not bitwise.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lssvwm.nn.attention_cache import FrameKV, commit_frames, empty_cache
from lssvwm.nn.attention_kernels import full_causal_attention, step_attention, windowed_attention
from lssvwm.nn.attention_window import FrameWindow

pytestmark = pytest.mark.skipif(
    jax.default_backend() != "gpu", reason="cuDNN attention runs on NVIDIA GPUs only"
)

U = 2.0**-8
FRAMES, TOKENS, HEADS, HEAD_DIM = 12, 16, 4, 64
ROPE_BASE = 10_000.0
WINDOWS = [FrameWindow(4), FrameWindow(4, chunk=2), FrameWindow(None)]


def _qkv(seed=0):
    rng = np.random.default_rng(seed)
    shape = (2, FRAMES, TOKENS, HEADS, HEAD_DIM)
    return [jnp.asarray(rng.standard_normal(shape), jnp.bfloat16) for _ in range(3)]


def _kernel(window, implementation):
    if window.is_full:
        return lambda q, k, v: full_causal_attention(
            q, k, v, rope_base=ROPE_BASE, implementation=implementation
        )
    return lambda q, k, v: windowed_attention(
        q, k, v, window, rope_base=ROPE_BASE, implementation=implementation
    )


def _assert_close(got, want, units):
    got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    error, scale = float(np.abs(got - want).max()), float(np.abs(want).max())
    assert error <= units * U * scale, (error, scale)


@pytest.mark.parametrize("window", WINDOWS, ids=str)
def test_cudnn_forward_equals_xla(window):
    q, k, v = _qkv()
    xla = jax.jit(_kernel(window, "xla"))(q, k, v)
    cudnn = jax.jit(_kernel(window, "cudnn"))(q, k, v)
    assert cudnn.dtype == jnp.bfloat16
    _assert_close(cudnn, xla, units=2)


@pytest.mark.parametrize("window", WINDOWS, ids=str)
def test_cudnn_gradients_equal_xla(window):
    q, k, v = _qkv(seed=1)
    cotangent = _qkv(seed=2)[0]

    def grads(implementation):
        kernel = _kernel(window, implementation)
        loss = lambda q, k, v: jnp.sum(
            kernel(q, k, v).astype(jnp.float32) * cotangent.astype(jnp.float32)
        )
        return jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v)

    for got, want in zip(grads("cudnn"), grads("xla"), strict=True):
        _assert_close(got, want, units=4)


def test_cudnn_streaming_step_equals_xla():
    """Frame by frame against a ring cache of the last k - 1 frames (sliding window k = 4)."""
    window = FrameWindow(4)
    q, k, v = _qkv(seed=3)
    step = jax.jit(step_attention, static_argnames=("window", "rope_base", "implementation"))
    outs = {}
    for implementation in ("xla", "cudnn"):
        cache = empty_cache(2, window.lookback, TOKENS, HEADS, HEAD_DIM, jnp.bfloat16, ring=True)
        frames = []
        for t in range(FRAMES):
            new = slice(t, t + 1)
            frames.append(
                step(
                    q[:, new],
                    k[:, new],
                    v[:, new],
                    cache,
                    window=window,
                    rope_base=ROPE_BASE,
                    implementation=implementation,
                )
            )
            cache = commit_frames(cache, FrameKV(k[:, new], v[:, new]))
        outs[implementation] = jnp.concatenate(frames, axis=1)
    _assert_close(outs["cudnn"], outs["xla"], units=2)
