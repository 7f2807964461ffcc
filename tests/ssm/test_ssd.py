"""The chunked SSD scan and the single-token step against plainly sequential references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lssvwm.ssm import ScanMethod, ssd_chunked, ssd_sequential, ssd_step
from lssvwm.ssm import ssd as ssd_eager

# Jitted once here: eager op-by-op dispatch of scans and their gradients is what makes tests slow.
ssd = jax.jit(ssd_eager, static_argnames=("chunk_size", "method"))


def make_inputs(seed, b, l, h, p, g, n, *, reset_prob=0.0, with_state=False, dt_scale=1.0):
    keys = jax.random.split(jax.random.key(seed), 7)
    x = jax.random.normal(keys[0], (b, l, h, p))
    dt = jax.nn.softplus(jax.random.normal(keys[1], (b, l, h))) * dt_scale
    A = -jnp.exp(jax.random.normal(keys[2], (h,)))
    B = jax.random.normal(keys[3], (b, l, g, n))
    C = jax.random.normal(keys[4], (b, l, g, n))
    state = jax.random.normal(keys[5], (b, h, p, n)) if with_state else None
    reset = None
    if reset_prob:
        reset = (jax.random.uniform(keys[6], (b, l)) < reset_prob).astype(jnp.int32)
    return dict(x=x, dt=dt, A=A, B=B, C=C), state, reset


def numpy_recurrence(x, dt, A, B, C, state=None, reset=None):
    """The recurrence written out in float64 loops: the most obvious statement of the contract."""
    x, dt, A, B, C = (np.asarray(a, np.float64) for a in (x, dt, A, B, C))
    b, l, h, p = x.shape
    g, n = B.shape[2:]
    state = np.zeros((b, h, p, n)) if state is None else np.array(state, np.float64)
    y = np.zeros((b, l, h, p))
    for t in range(l):
        for head in range(h):
            group = head // (h // g)
            decay = np.exp(dt[:, t, head] * A[head])
            if reset is not None:
                decay = np.where(np.asarray(reset)[:, t] == 1, 0.0, decay)
            state[:, head] = decay[:, None, None] * state[:, head] + (
                dt[:, t, head, None, None] * x[:, t, head, :, None] * B[:, t, group, None, :]
            )
            y[:, t, head] = np.einsum("bpn,bn->bp", state[:, head], C[:, t, group])
    return y, state


# (seed, b, l, h, p, g, n, chunk, reset_prob, with_state): ragged lengths, groups, carried state,
# resets, a single partial chunk, chunk size 1 and a chunk larger than the sequence.
CASES = [
    (0, 2, 37, 4, 8, 2, 16, 8, 0.1, True),
    (1, 1, 64, 2, 4, 1, 8, 16, 0.0, False),
    (2, 3, 5, 4, 4, 4, 4, 64, 0.3, True),
    (3, 2, 23, 6, 4, 3, 8, 1, 0.1, False),
]


@pytest.mark.parametrize("seed,b,l,h,p,g,n,chunk,reset_prob,with_state", CASES)
def test_sequential_reference_matches_numpy(seed, b, l, h, p, g, n, chunk, reset_prob, with_state):
    inputs, state, reset = make_inputs(
        seed, b, l, h, p, g, n, reset_prob=reset_prob, with_state=with_state
    )
    y, final = jax.jit(ssd_sequential)(**inputs, initial_state=state, reset=reset)
    y_np, final_np = numpy_recurrence(**inputs, state=state, reset=reset)
    np.testing.assert_allclose(y, y_np, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(final, final_np, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("chunks_per_step", [1, 2, None])
@pytest.mark.parametrize("seed,b,l,h,p,g,n,chunk,reset_prob,with_state", CASES)
def test_chunked_matches_sequential(
    seed, b, l, h, p, g, n, chunk, reset_prob, with_state, chunks_per_step
):
    inputs, state, reset = make_inputs(
        seed, b, l, h, p, g, n, reset_prob=reset_prob, with_state=with_state
    )
    y, final = jax.jit(ssd_chunked, static_argnames=("chunk_size", "chunks_per_step"))(
        **inputs,
        chunk_size=chunk,
        initial_state=state,
        reset=reset,
        chunks_per_step=chunks_per_step,
    )
    y_ref, final_ref = jax.jit(ssd_sequential)(**inputs, initial_state=state, reset=reset)
    assert y.shape == (b, l, h, p) and final.shape == (b, h, p, n)
    assert final.dtype == jnp.float32
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(final, final_ref, rtol=1e-4, atol=1e-4)


def test_step_chain_matches_chunked():
    inputs, state, reset = make_inputs(4, 2, 19, 4, 8, 2, 16, reset_prob=0.15, with_state=True)
    y_chunked, final_chunked = ssd(
        **inputs, chunk_size=8, initial_state=state, reset=reset, method="chunked"
    )
    step = jax.jit(ssd_step)
    ys = []
    for t in range(19):
        y_t, state = step(
            state,
            inputs["x"][:, t],
            inputs["dt"][:, t],
            inputs["A"],
            inputs["B"][:, t],
            inputs["C"][:, t],
            reset=reset[:, t],
        )
        ys.append(y_t)
    np.testing.assert_allclose(jnp.stack(ys, 1), y_chunked, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(state, final_chunked, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("split", [1, 13, 32])
def test_split_sequence_with_carried_state_equals_one_call(split):
    inputs, state, reset = make_inputs(5, 2, 45, 4, 8, 2, 16, reset_prob=0.05, with_state=True)
    y_full, final_full = ssd(**inputs, chunk_size=16, initial_state=state, reset=reset)
    first = {k: (v[:, :split] if k != "A" else v) for k, v in inputs.items()}
    second = {k: (v[:, split:] if k != "A" else v) for k, v in inputs.items()}
    y1, mid = ssd(**first, chunk_size=16, initial_state=state, reset=reset[:, :split])
    y2, final = ssd(**second, chunk_size=16, initial_state=mid, reset=reset[:, split:])
    np.testing.assert_allclose(jnp.concatenate([y1, y2], 1), y_full, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(final, final_full, rtol=1e-4, atol=1e-4)


def test_reset_at_start_ignores_initial_state_and_other_samples_keep_theirs():
    inputs, state, _ = make_inputs(6, 2, 12, 2, 4, 1, 4, with_state=True)
    reset = jnp.zeros((2, 12), jnp.int32).at[0, 0].set(1)
    y, _ = ssd(**inputs, chunk_size=4, initial_state=state, reset=reset)
    y_zero_state, _ = ssd(**inputs, chunk_size=4)
    y_kept, _ = ssd(**inputs, chunk_size=4, initial_state=state)
    np.testing.assert_allclose(y[0], y_zero_state[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y[1], y_kept[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunks_per_step", [1, None])
def test_gradients_match_sequential(chunks_per_step):
    inputs, state, reset = make_inputs(7, 2, 21, 4, 4, 2, 8, reset_prob=0.1, with_state=True)
    weights = jax.random.normal(jax.random.key(99), (2, 21, 4, 4))

    def loss(fn, x, dt, A, B, C, s0):
        y, final = fn(x, dt, A, B, C, initial_state=s0, reset=reset)
        return jnp.sum(y * weights) + jnp.sum(final**2) * 0.1

    args = (inputs["x"], inputs["dt"], inputs["A"], inputs["B"], inputs["C"], state)
    chunked = lambda *a, **k: ssd_chunked(*a, chunk_size=8, chunks_per_step=chunks_per_step, **k)
    grads = jax.jit(jax.grad(lambda *a: loss(chunked, *a), argnums=tuple(range(6))))(*args)
    grads_ref = jax.jit(jax.grad(lambda *a: loss(ssd_sequential, *a), argnums=tuple(range(6))))(
        *args
    )
    for g, g_ref in zip(grads, grads_ref, strict=True):
        np.testing.assert_allclose(g, g_ref, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("method", ["chunked_loop", "chunked_parallel", "sequential"])
def test_finite_values_and_gradients_at_extreme_decay(method):
    b, l, h, p, g, n = 1, 64, 2, 4, 1, 4
    inputs, state, reset = make_inputs(8, b, l, h, p, g, n, with_state=True, reset_prob=0.05)
    inputs["dt"] = jnp.full((b, l, h), 5.0)
    inputs["A"] = jnp.full((h,), -16.0)

    def loss(x, dt, A, B, C):
        y, final = ssd(
            x, dt, A, B, C, chunk_size=64, initial_state=state, reset=reset, method=method
        )
        return jnp.sum(y) + jnp.sum(final)

    value, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3, 4)))(*inputs.values())
    assert jnp.isfinite(value)
    for grad in grads:
        assert jnp.all(jnp.isfinite(grad))


def test_bfloat16_inputs_accumulate_in_float32():
    inputs, state, reset = make_inputs(9, 2, 40, 4, 8, 2, 16, with_state=True, reset_prob=0.05)
    y32, final32 = ssd(**inputs, chunk_size=16, initial_state=state, reset=reset)
    bf16 = {k: v.astype(jnp.bfloat16) for k, v in inputs.items()}
    y16, final16 = ssd(**bf16, chunk_size=16, initial_state=state, reset=reset)
    assert y16.dtype == jnp.bfloat16 and final16.dtype == jnp.float32
    scale = float(jnp.abs(y32).max())
    assert float(jnp.abs(y16.astype(jnp.float32) - y32).max()) < 0.05 * scale
    step_y, step_state = ssd_step(
        state, bf16["x"][:, 0], bf16["dt"][:, 0], bf16["A"], bf16["B"][:, 0], bf16["C"][:, 0]
    )
    assert step_y.dtype == jnp.bfloat16 and step_state.dtype == jnp.float32


def test_vmap_over_an_extra_axis():
    inputs, _, _ = make_inputs(10, 2, 17, 2, 4, 1, 4)
    stacked = {k: jnp.stack([v, v * 0.5]) if k != "A" else v for k, v in inputs.items()}
    fn = lambda x, dt, B, C: ssd(x, dt, inputs["A"], B, C, chunk_size=8)
    y, final = jax.jit(jax.vmap(fn))(stacked["x"], stacked["dt"], stacked["B"], stacked["C"])
    y0, final0 = fn(stacked["x"][1], stacked["dt"][1], stacked["B"][1], stacked["C"][1])
    np.testing.assert_allclose(y[1], y0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(final[1], final0, rtol=1e-5, atol=1e-5)


def test_auto_method_agrees_with_both_methods():
    for length in (3, 50):
        inputs, state, _ = make_inputs(11, 1, length, 2, 4, 1, 4, with_state=True)
        y_auto, _ = ssd(**inputs, initial_state=state, method=ScanMethod.AUTO)
        y_seq, _ = ssd(**inputs, initial_state=state, method=ScanMethod.SEQUENTIAL)
        np.testing.assert_allclose(y_auto, y_seq, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda a: a.update(x=a["x"][0]), "x must be"),
        (lambda a: a.update(dt=a["dt"][:, :-1]), "dt must be"),
        (lambda a: a.update(A=a["A"][:1]), "A must be"),
        (lambda a: a.update(C=a["C"][..., :2]), "C must have the shape of B"),
        (
            lambda a: a.update(
                B=jnp.concatenate([a["B"], a["B"][:, :, :1]], 2),
                C=jnp.concatenate([a["C"], a["C"][:, :, :1]], 2),
            ),
            "multiple of groups",
        ),
    ],
)
def test_bad_shapes_raise_clear_errors(mutate, message):
    inputs, _, _ = make_inputs(12, 1, 8, 4, 4, 2, 4)
    mutate(inputs)
    with pytest.raises(ValueError, match=message):
        ssd(**inputs)


def test_bad_state_and_reset_shapes_raise():
    inputs, _, _ = make_inputs(13, 1, 8, 4, 4, 2, 4)
    with pytest.raises(ValueError, match="state must be"):
        ssd(**inputs, initial_state=jnp.zeros((1, 4, 4, 5)))
    with pytest.raises(ValueError, match="reset must be"):
        ssd(**inputs, reset=jnp.zeros((1, 7)))
    with pytest.raises(ValueError):
        ssd(**inputs, method="fastest")
