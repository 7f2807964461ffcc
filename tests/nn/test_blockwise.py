"""Block-wise spatial scan: token order, per-block state, frame stepping, per-frame resets."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lssvwm.nn.blockwise import (
    BlockwiseMamba2,
    frame_reset_to_block_tokens,
    frame_values_to_block_tokens,
    num_blocks,
    resolve_block_size,
    tokens_to_block_sequences,
)
from tests.random_weights import random_split

D_MODEL, BATCH, FRAMES, GRID = 16, 2, 3, (2, 4)
MIXER = dict(d_state=8, head_dim=8, expand=1, chunk_size=4)


def make(block_size):
    """Graph and random parameters (the same for every block size: the mixer does not depend on
    it), filled from numpy so that no initialiser compiles."""
    return random_split(
        lambda: BlockwiseMamba2(D_MODEL, block_size, rngs=nnx.Rngs(0), **MIXER), seed=0
    )


@functools.partial(jax.jit, static_argnums=0)
def full(graphdef, params, x, reset):
    return nnx.merge(graphdef, params)(x, reset=reset)


@functools.partial(jax.jit, static_argnums=0)
def frame_by_frame(graphdef, params, x, reset):
    """Scans the frames one at a time, carrying the per-block state."""
    model = nnx.merge(graphdef, params)
    state = model.init_state(x.shape[0], x.shape[2:4])

    def body(state, inputs):
        x_t, reset_t = inputs
        y_t, state = model(x_t[:, None], state, reset=reset_t[:, None])
        return state, y_t[:, 0]

    state, y = jax.lax.scan(body, state, (jnp.moveaxis(x, 1, 0), jnp.moveaxis(reset, 1, 0)))
    return jnp.moveaxis(y, 0, 1), state


@functools.partial(jax.jit, static_argnums=(0, 4))
def per_block_reference(graphdef, params, x, reset, block_hw):
    """Obvious version: gather each block's tokens (frame, row, column order), scan, scatter."""
    mixer = nnx.merge(graphdef, params).mixer
    b, t, hp, wp, d = x.shape
    bh, bw = block_hw
    y = jnp.zeros_like(x)
    for r0 in range(0, hp, bh):
        for c0 in range(0, wp, bw):
            seq = x[:, :, r0 : r0 + bh, c0 : c0 + bw].reshape(b, t * bh * bw, d)
            token_reset = jnp.zeros((b, t, bh * bw), reset.dtype).at[:, :, 0].set(reset)
            out, _ = mixer(seq, reset=token_reset.reshape(b, t * bh * bw))
            y = y.at[:, :, r0 : r0 + bh, c0 : c0 + bw].set(out.reshape(b, t, bh, bw, d))
    return y


@pytest.fixture(scope="module")
def inputs():
    x = jax.random.normal(jax.random.key(0), (BATCH, FRAMES, *GRID, D_MODEL))
    reset = jnp.zeros((BATCH, FRAMES), jnp.int32).at[1, 1].set(1)
    return x, reset


@pytest.mark.parametrize("block_size", [(1, 1), (1, 2), (2, 2), None], ids=str)
def test_full_call_matches_per_block_reference_and_frame_stepping(inputs, block_size):
    x, reset = inputs
    graphdef, params = make(block_size)
    y, state = full(graphdef, params, x, reset)
    bh, bw = resolve_block_size(GRID, block_size)
    if block_size != (1, 1):  # (1, 1) would unroll 8 scans into one graph; frame stepping covers it
        y_ref = per_block_reference(graphdef, params, x, reset, (bh, bw))
        np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)
    y_step, state_step = frame_by_frame(graphdef, params, x, reset)
    np.testing.assert_allclose(y_step, y, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(state_step.ssm, state.ssm, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(state_step.conv, state.conv, rtol=1e-4, atol=1e-4)
    assert state.ssm.shape[0] == BATCH * num_blocks(GRID, block_size)


def test_blocks_do_not_interact(inputs):
    """Changing one block's tokens changes no other block's output (2x2 blocks on a 2x4 grid)."""
    x, reset = inputs
    graphdef, params = make((2, 2))
    y, _ = full(graphdef, params, x, reset)
    y2, _ = full(graphdef, params, x.at[:, :, :, :2].add(1.0), reset)
    np.testing.assert_array_equal(y[:, :, :, 2:], y2[:, :, :, 2:])
    assert np.abs(y[:, :, :, :2] - y2[:, :, :, :2]).max() > 1e-3


def test_frame_reset_maps_to_first_token_of_each_block():
    reset = jnp.array([[0, 1, 0]])
    tokens = frame_reset_to_block_tokens(reset, blocks=2, block_tokens=3)
    expected = np.array([0, 0, 0, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(tokens, np.stack([expected, expected]))


def test_block_size_resolution():
    assert resolve_block_size(GRID, None) == GRID
    assert resolve_block_size(GRID, [1, 2]) == (1, 2)
    assert num_blocks(GRID, (1, 2)) == 4 and num_blocks(GRID, None) == 1


def test_non_dividing_block_size_raises(inputs):
    x, _ = inputs

    def abstract(block_size):  # shapes only: the checks fire before any computation
        return nnx.eval_shape(
            lambda: BlockwiseMamba2(D_MODEL, block_size, rngs=nnx.Rngs(0), **MIXER)
        )

    with pytest.raises(ValueError, match=r"does not divide the token grid \(2, 4\)"):
        abstract((1, 3))(x)
    with pytest.raises(ValueError, match="does not divide"):
        resolve_block_size(GRID, (0, 1))
    with pytest.raises(ValueError, match="per frame"):
        abstract((1, 1))(x, reset=jnp.zeros((BATCH, FRAMES * 2)))
    with pytest.raises(ValueError, match=r"\[b, t, hp, wp, d\]"):
        abstract((1, 1))(x[0])


def test_frame_values_follow_their_frames_into_block_order():
    """A per-frame value (a pose angle) lands on exactly the tokens of its frame in every block."""
    b, t, hp, wp, n = 2, 3, 4, 6, 5
    values_BTN = jnp.arange(b * t * n, dtype=jnp.float32).reshape(b, t, n)
    for block_hw in ((1, 1), (2, 3), (4, 6)):
        bh, bw = block_hw
        blocks = (hp // bh) * (wp // bw)
        tokens = jnp.broadcast_to(values_BTN[:, :, None, None], (b, t, hp, wp, n))
        expected = tokens_to_block_sequences(tokens, block_hw)
        got = frame_values_to_block_tokens(values_BTN, blocks, bh * bw)
        np.testing.assert_array_equal(got, expected)
