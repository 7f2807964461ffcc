"""AdaLN-Zero DiT block: identity at initialisation, per-frame modulation, configuration errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lssvwm.nn.dit import DiTBlock
from lssvwm.nn.embed import dense

GRID = (2, 2)
MAMBA = dict(d_state=4, head_dim=8, expand=1, chunk_size=4)


def test_block_is_identity_with_zero_modulation_and_modulation_is_per_frame():
    block = nnx.eval_shape(
        lambda: DiTBlock(
            8,
            grid_hw=GRID,
            ssm_block_size=(1, 1),
            attention_window=1,
            num_heads=2,
            mamba=MAMBA,
            rngs=nnx.Rngs(0),
        )
    )
    graphdef, state = nnx.split(block)
    rng = np.random.default_rng(0)
    state = jax.tree.map(lambda a: jnp.asarray(0.3 * rng.standard_normal(a.shape), a.dtype), state)
    x = jax.random.normal(jax.random.key(0), (1, 3, *GRID, 8))
    cond = jax.random.normal(jax.random.key(1), (1, 3, 8))
    apply = jax.jit(lambda state, x, cond: nnx.merge(graphdef, state)(x, cond)[0])
    # Changing frame 2's conditioning leaves frames 0-1 unchanged.
    y = apply(state, x, cond)
    y2 = apply(state, x, cond.at[:, 2].add(1.0))
    np.testing.assert_array_equal(y[:, :2], y2[:, :2])
    assert np.abs(y[:, 2] - y2[:, 2]).max() > 1e-4
    # AdaLN-Zero: with the (zero-initialised) modulation at zero every gate is 0: identity.
    for name in ("kernel", "bias"):
        variable = state["modulation"][name]
        variable.set_value(jnp.zeros(variable.shape))
    np.testing.assert_array_equal(apply(state, x, cond), x)


def test_modulation_and_output_projections_start_at_zero():
    layer = dense(4, 6, ("cond", "embed"), zero=True, rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(layer.kernel[...], 0)
    np.testing.assert_array_equal(layer.bias[...], 0)


def test_block_errors():
    with pytest.raises(ValueError, match="needs an SSM, attention, or both"):
        DiTBlock(8, grid_hw=GRID, use_ssm=False, use_attention=False, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="does not divide the token grid"):
        DiTBlock(8, grid_hw=GRID, ssm_block_size=(3, 1), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="longer than the training window"):
        DiTBlock(
            8,
            grid_hw=GRID,
            use_ssm=False,
            attention_window=5,
            max_frames=4,
            num_heads=2,
            rngs=nnx.Rngs(0),
        )
    block = nnx.eval_shape(
        lambda: DiTBlock(
            8,
            grid_hw=GRID,
            use_ssm=False,
            attention_window=4,
            attention_chunk=2,
            num_heads=2,
            rngs=nnx.Rngs(0),
        )
    )
    assert block.unit == 2
    with pytest.raises(ValueError, match="step takes 2 frame"):
        block.step(jnp.zeros((1, 1, *GRID, 8)), jnp.zeros((1, 1, 8)), block.init_cache(1))
