"""Mamba-2 mixer: full-sequence call against the token-by-token step chain, state, resets, grads."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lssvwm.nn.mamba2 import Mamba2Mixer, Mamba2State

D_MODEL = 16
BATCH = 2
LENGTH = 11  # ragged: not a multiple of the chunk size


def make_mixer(seed=0, **kwargs):
    """A small mixer's graph and random parameters (every one random, so D, norm scale and
    biases all matter). Built abstractly and filled from numpy: no initialiser compiles."""
    settings = dict(d_state=8, head_dim=8, expand=2, n_groups=2, chunk_size=4, use_bias=True)
    settings.update(kwargs)
    mixer = nnx.eval_shape(lambda: Mamba2Mixer(D_MODEL, rngs=nnx.Rngs(seed), **settings))
    graphdef, params = nnx.split(mixer)
    return graphdef, random_params(params, seed)


def random_params(params, seed):
    rng = np.random.default_rng(seed)

    def fill(leaf):
        std = 0.3 if len(leaf.shape) < 2 else 1.0 / np.sqrt(leaf.shape[0])
        return jnp.asarray(std * rng.standard_normal(leaf.shape), leaf.dtype)

    return jax.tree.map(fill, params)


def random_state(graphdef, params, batch, seed):
    zero = nnx.merge(graphdef, params).init_state(batch)
    k1, k2 = jax.random.split(jax.random.key(seed))
    return Mamba2State(
        ssm=jax.random.normal(k1, zero.ssm.shape, zero.ssm.dtype),
        conv=jax.random.normal(k2, zero.conv.shape, zero.conv.dtype),
    )


@functools.partial(jax.jit, static_argnums=0)
def full(graphdef, params, u, state, reset=None):
    return nnx.merge(graphdef, params)(u, state, reset=reset)


@functools.partial(jax.jit, static_argnums=0)
def step_chain(graphdef, params, u, state, reset=None, angles=None):
    """Reference: the single-token step, scanned over the sequence (with per-step resets
    [B, L] and/or pose angles [B, L, 3] where given)."""
    mixer = nnx.merge(graphdef, params)
    batch, length = u.shape[:2]
    if reset is None:
        reset = jnp.zeros((batch, length), jnp.int32)

    def body(state, inputs):
        u_t, reset_t, angles_t = inputs
        y_t, state = mixer.step(u_t, state, reset=reset_t, pose_angles_BN=angles_t)
        return state, y_t

    inputs = tuple(None if x is None else jnp.moveaxis(x, 1, 0) for x in (u, reset, angles))
    state, y = jax.lax.scan(body, state, inputs)
    return jnp.moveaxis(y, 0, 1), state


def assert_states_close(a, b, **tol):
    np.testing.assert_allclose(a.ssm, b.ssm, **tol)
    np.testing.assert_allclose(a.conv, b.conv, **tol)


@pytest.fixture(scope="module")
def setup():
    graphdef, params = make_mixer()
    u = jax.random.normal(jax.random.key(1), (BATCH, LENGTH, D_MODEL))
    state = random_state(graphdef, params, BATCH, seed=2)
    reset = jnp.zeros((BATCH, LENGTH), jnp.int32)
    # Row 0: a reset mid-sequence. Row 1: resets at the start and on two neighbours, so conv taps
    # of every lag are cut.
    reset = reset.at[0, 6].set(1).at[1, 0].set(1).at[1, 3].set(1).at[1, 4].set(1)
    return graphdef, params, u, state, reset


def test_full_call_matches_step_chain(setup):
    graphdef, params, u, state, reset = setup
    no_reset = jnp.zeros_like(reset)
    for mask in (no_reset, reset):
        y_full, s_full = full(graphdef, params, u, state, mask)
        y_step, s_step = step_chain(graphdef, params, u, state, mask)
        np.testing.assert_allclose(y_full, y_step, rtol=1e-4, atol=1e-4)
        assert_states_close(s_full, s_step, rtol=1e-4, atol=1e-4)


def test_state_carried_across_two_calls(setup):
    graphdef, params, u, state, reset = setup
    y_all, s_all = full(graphdef, params, u, state, reset)
    for split in (6,):  # a reset right at the boundary (row 0)
        y1, s1 = full(graphdef, params, u[:, :split], state, reset[:, :split])
        y2, s2 = full(graphdef, params, u[:, split:], s1, reset[:, split:])
        np.testing.assert_allclose(jnp.concatenate([y1, y2], 1), y_all, rtol=1e-4, atol=1e-4)
        assert_states_close(s2, s_all, rtol=1e-4, atol=1e-4)


def test_reset_cuts_ssm_and_conv(setup):
    """After a reset at r, outputs equal a fresh run from r: nothing before r leaks in."""
    graphdef, params, u, state, reset = setup
    y, s = full(graphdef, params, u, state, reset)
    zero = nnx.merge(graphdef, params).init_state(1)
    y_fresh, s_fresh = full(graphdef, params, u[:1, 6:], zero, None)
    np.testing.assert_allclose(y[:1, 6:], y_fresh, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(s.ssm[:1], s_fresh.ssm, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(s.conv[:1], s_fresh.conv, rtol=1e-4, atol=1e-4)
    # Row 1 resets at 4 after resets at 3 and 0: same as a fresh run from 4.
    y_fresh, _ = full(graphdef, params, u[1:, 4:], zero, None)
    np.testing.assert_allclose(y[1:, 4:], y_fresh, rtol=1e-4, atol=1e-4)
    # Without the reset the output does depend on the past (the test above is not vacuous).
    y_no_reset, _ = full(graphdef, params, u, state, jnp.zeros_like(reset))
    assert np.abs(y_no_reset[:1, 6:] - y[:1, 6:]).max() > 1e-3


def test_reset_in_last_position_holds_in_next_call(setup):
    """A reset at a call's last position must stop the *next* call's conv reading older inputs."""
    graphdef, params, u, state, _ = setup
    reset = jnp.zeros((BATCH, LENGTH), jnp.int32).at[:, 4].set(1)
    y_all, _ = full(graphdef, params, u, state, reset)
    y1, s1 = full(graphdef, params, u[:, :5], state, reset[:, :5])
    y2, _ = full(graphdef, params, u[:, 5:], s1, None)
    np.testing.assert_allclose(y2, y_all[:, 5:], rtol=1e-4, atol=1e-4)
    assert np.all(np.asarray(s1.conv[:, :-1]) == 0)  # inputs before the reset are dropped


def test_default_state_is_zero(setup):
    graphdef, params, u, _, _ = setup
    y_default, _ = jax.jit(lambda p, u: nnx.merge(graphdef, p)(u))(params, u)
    y_zero, _ = full(graphdef, params, u, nnx.merge(graphdef, params).init_state(BATCH))
    np.testing.assert_allclose(y_default, y_zero, rtol=1e-6, atol=1e-6)


def test_gradients_finite_and_nonzero(setup):
    graphdef, params, u, state, reset = setup

    def loss(params, u):
        y, s = nnx.merge(graphdef, params)(u, state, reset=reset)
        return jnp.sum(y**2) + jnp.sum(s.ssm**2)

    g_params, g_u = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, u)
    for path, leaf in jax.tree_util.tree_leaves_with_path(g_params):
        assert np.all(np.isfinite(leaf)), path
        assert np.abs(leaf).max() > 0, path
    assert np.all(np.isfinite(g_u)) and np.abs(g_u).max() > 0


def test_bfloat16_compute_close_to_float32():
    graphdef_bf16, params = make_mixer(seed=3, dtype=jnp.bfloat16)
    graphdef_f32, params_f32 = make_mixer(seed=3)  # the same random parameters
    jax.tree.map(np.testing.assert_array_equal, params, params_f32)
    u = jax.random.normal(jax.random.key(4), (1, 9, D_MODEL))
    y_bf16, s_bf16 = jax.jit(lambda p, u: nnx.merge(graphdef_bf16, p)(u))(params, u)
    assert y_bf16.dtype == jnp.bfloat16 and s_bf16.ssm.dtype == jnp.float32
    assert s_bf16.conv.dtype == jnp.bfloat16
    y_f32, _ = jax.jit(lambda p, u: nnx.merge(graphdef_f32, p)(u))(params, u)
    scale = np.abs(np.asarray(y_f32)).max()
    np.testing.assert_allclose(np.asarray(y_bf16, np.float32), y_f32, atol=0.05 * scale)


def test_init_ranges_and_logical_axis_names():
    mixer = Mamba2Mixer(D_MODEL, d_state=8, head_dim=8, rngs=nnx.Rngs(0))
    dt = jax.nn.softplus(mixer.dt_bias[...])
    assert np.all((dt >= 1e-3 * 0.999) & (dt <= 0.1 * 1.001))
    A = np.exp(mixer.A_log[...])
    assert np.all((A >= 1) & (A <= 16))
    np.testing.assert_array_equal(mixer.D[...], 1.0)
    assert mixer.heads == 4 and mixer.init_state(3).ssm.shape == (3, 4, 8, 8)
    assert mixer.init_state(3).conv.shape == (3, 3, 32 + 2 * 8)
    specs = nnx.get_partition_spec(nnx.state(mixer, nnx.Param))
    assert tuple(specs["in_proj"]["kernel"].get_value()) == ("embed", "ssm_inner")
    assert tuple(specs["A_log"].get_value()) == ("heads",)


def test_bad_inputs_raise_clear_errors(setup):
    graphdef, params, u, state, reset = setup
    mixer = nnx.merge(graphdef, params)
    with pytest.raises(ValueError, match="input must be"):
        mixer(u[..., :3])
    with pytest.raises(ValueError, match="state.ssm"):
        mixer(u, mixer.init_state(BATCH + 1))
    with pytest.raises(ValueError, match="reset must be"):
        mixer(u, state, reset=reset[:, :3])
    with pytest.raises(ValueError, match="reset must be"):
        mixer.step(u[:, 0], state, reset=reset)
    with pytest.raises(ValueError, match="multiple of head_dim"):
        Mamba2Mixer(10, head_dim=8, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="n_groups"):
        Mamba2Mixer(16, head_dim=8, n_groups=3, rngs=nnx.Rngs(0))


# ---- B and C turned by the camera pose (pose_pairs) -----------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def full_posed(graphdef, params, u, state, angles):
    return nnx.merge(graphdef, params)(u, state, pose_angles_BLN=angles)


@pytest.fixture(scope="module")
def posed():
    graphdef, params = make_mixer(pose_pairs=3)  # 3 of B's and C's 4 pairs turn
    u = jax.random.normal(jax.random.key(1), (BATCH, LENGTH, D_MODEL))
    angles = jax.random.uniform(jax.random.key(3), (BATCH, LENGTH, 3), maxval=2 * np.pi)
    zero = nnx.merge(graphdef, params).init_state(BATCH)
    return graphdef, params, u, zero, angles


def test_pose_turned_call_matches_its_step_chain(posed):
    graphdef, params, u, zero, angles = posed
    y_full, s_full = full_posed(graphdef, params, u, zero, angles)
    y_step, s_step = step_chain(graphdef, params, u, zero, angles=angles)
    np.testing.assert_allclose(y_full, y_step, rtol=1e-4, atol=1e-4)
    assert_states_close(s_full, s_step, rtol=1e-4, atol=1e-4)


def test_pose_turned_scan_sees_pose_differences_only(posed):
    """From a zero state, y_t reads B_s . C_t = b_s R(theta_t - theta_s) c_t: a pose shift shared
    by every position changes nothing, a different pose per position does."""
    graphdef, params, u, zero, angles = posed
    y, _ = full_posed(graphdef, params, u, zero, angles)
    shifted, _ = full_posed(graphdef, params, u, zero, angles + jnp.array([0.7, -2.0, 1.3]))
    np.testing.assert_allclose(shifted, y, rtol=1e-4, atol=1e-5)
    other = jax.random.uniform(jax.random.key(4), angles.shape, maxval=2 * np.pi)
    moved, _ = full_posed(graphdef, params, u, zero, other)
    assert float(jnp.max(jnp.abs(moved - y))) > 1e-2


def test_pose_turned_scan_needs_its_angles(posed):
    graphdef, params, u, zero, angles = posed
    mixer = nnx.merge(graphdef, params)
    with pytest.raises(ValueError, match="needs pose_angles"):
        mixer(u, zero)
    with pytest.raises(ValueError, match="needs pose_angles"):
        mixer(u, zero, pose_angles_BLN=angles[..., :2])
    with pytest.raises(ValueError, match="pose_pairs must be in"):
        make_mixer(pose_pairs=5)  # d_state 8 has 4 pairs
