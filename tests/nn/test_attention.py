"""FrameLocalAttention layer: window by perturbation, time-shift invariance, errors, axis names."""

import jax
import numpy as np
import pytest
from flax import nnx

from lssvwm.nn.attention import FrameLocalAttention

BATCH, FRAMES, TOKENS, WIDTH, HEADS = 2, 12, 3, 16, 2

# (window, chunk_size, query_block): query blocks that do not divide the 12 frames.
CONFIGS = {
    "sliding": (3, None, 5),
    "chunked": (4, 2, 8),
    "full": (None, None, 5),
}


def _layer(name, **kwargs):
    window, chunk, block = CONFIGS[name]
    return FrameLocalAttention(
        WIDTH,
        HEADS,
        rngs=nnx.Rngs(0),
        window=window,
        chunk_size=chunk,
        query_block=block,
        rope_base=100.0,
        **kwargs,
    )


def _jit_call(layer):
    graphdef, state = nnx.split(layer)
    call = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))
    return lambda x: call(state, x)


def _frames(batch, frames=FRAMES, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, frames, TOKENS, WIDTH)).astype(np.float32)


def _expected_moved(name, j):
    """Frames whose outputs may change when input frame j changes."""
    window, chunk, _ = CONFIGS[name]
    frames = np.arange(FRAMES)
    if window is None:
        return frames >= j
    if chunk is None:
        return (frames >= j) & (frames <= j + window)
    first = (j // chunk) * chunk
    return (frames >= first) & (frames < first + window)


# Perturbed frames, and the time shift (frames) of the shifted copy for each configuration.
PERTURBED = (0, 5, 11)
SHIFT = {"sliding": 3, "chunked": 4, "full": None}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_window_by_perturbation_and_time_shift(name):
    """One batched call: the base clip, one copy per perturbed frame, and a time-shifted copy.

    Changing frame j must move exactly the outputs the window allows (frames j..j+k sliding; the
    chunks j's chunk is visible to, chunked; j.. full). A clip shifted later in time by `a` frames
    (random frames before it) must give the same outputs wherever the window lies inside the clip:
    nothing depends on the absolute frame index.
    """
    layer = _layer(name)
    base = _frames(1)[0]
    rows = [base]
    for j in PERTURBED:
        perturbed = base.copy()
        perturbed[j] += _frames(1, frames=1, seed=j + 1)[0, 0]
        rows.append(perturbed)
    shift = SHIFT[name]
    if shift is not None:
        rows.append(np.concatenate([_frames(1, frames=shift, seed=99)[0], base[:-shift]]))
    y = np.asarray(_jit_call(layer)(np.stack(rows)))

    for row, j in enumerate(PERTURBED, start=1):
        moved = np.abs(y[row] - y[0]).max(axis=(1, 2)) > 1e-6
        np.testing.assert_array_equal(moved, _expected_moved(name, j), err_msg=f"frame {j}")

    if shift is not None:
        window, chunk, _ = CONFIGS[name]
        first_full = window - (chunk or 0)  # the first frame whose whole window is in the clip
        np.testing.assert_allclose(
            y[-1, shift + first_full :], y[0, first_full : FRAMES - shift], atol=1e-5
        )


def test_parameters_carry_logical_axis_names():
    layer = _layer("sliding", use_bias=True)
    names = {
        path: variable.get_metadata()["out_sharding"]
        for path, variable in nnx.iter_graph(layer)
        if isinstance(variable, nnx.Param)
    }
    assert names[("q_kernel",)] == ("embed", "heads", "head_dim")
    assert names[("out_kernel",)] == ("heads", "head_dim", "embed")
    assert names[("q_bias",)] == ("heads", "head_dim")
    assert names[("out_bias",)] == ("embed",)
    assert names[("k_norm_scale",)] == ("head_dim",)
    assert len(names) == 10  # q, k, v, out kernels and biases, two qk-norm scales


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(window=12, max_frames=8), "longer than the training window"),
        (dict(window=10, chunk_size=4), "must divide the attention window"),
        (dict(window=4, chunk_size=8), "must divide the attention window"),
        (dict(window=None, chunk_size=2), "takes no chunk_size"),
        (dict(window=-1), "int >= 0"),
        (dict(window=4, chunk_size=2, query_block=3), "multiple of the window's unit"),
        (dict(head_dim=5), "even head_dim"),
    ],
)
def test_configuration_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FrameLocalAttention(WIDTH, HEADS, rngs=nnx.Rngs(0), **kwargs)


def test_embed_dim_must_split_into_heads():
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        FrameLocalAttention(15, 2, rngs=nnx.Rngs(0))


def test_input_shape_errors():
    sliding, chunked = _layer("sliding"), _layer("chunked")
    with pytest.raises(ValueError, match=r"\[batch, frames, tokens, 16\]"):
        sliding(np.zeros((BATCH, FRAMES, WIDTH), np.float32))
    with pytest.raises(ValueError, match=r"\[batch, frames, tokens, 16\]"):
        sliding(np.zeros((BATCH, FRAMES, TOKENS, WIDTH + 1), np.float32))
    with pytest.raises(ValueError, match="whole chunks"):
        chunked(np.zeros((BATCH, 5, TOKENS, WIDTH), np.float32))
    cache = chunked.init_cache(BATCH, TOKENS)
    with pytest.raises(ValueError, match="one unit of 2 frame"):
        chunked.step(np.zeros((BATCH, 1, TOKENS, WIDTH), np.float32), cache)
    with pytest.raises(ValueError, match="ring of 3 frames"):
        sliding.step(np.zeros((BATCH, 1, TOKENS, WIDTH), np.float32), cache)
    with pytest.raises(ValueError, match="do not fit inputs"):
        sliding.step(
            np.zeros((BATCH, 1, TOKENS + 1, WIDTH), np.float32),
            sliding.init_cache(BATCH, TOKENS),
        )
