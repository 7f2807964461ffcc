"""One jitted train step on tiny shapes: finite loss, parameters move, EMA follows, donation."""

import jax
import numpy as np
import pytest

from lssvwm.training.ema import ema_decay_at


def test_one_train_step_changes_params_and_gives_finite_loss(tiny_parts, tiny_step_fn, make_batch):
    graphdef, fresh_state, tx, schedule, diffusion, model_config = tiny_parts
    step_fn = tiny_step_fn
    state = fresh_state()
    before = jax.tree.map(np.array, state["params"])
    ema_before = jax.tree.map(np.array, state["ema"])
    batch = make_batch(model_config)
    # Step 0 has learning rate 0 (warm-up from 0): take two steps so the update is non-zero.
    state, _, metrics0 = step_fn(state, None, batch)
    state, _, metrics = step_fn(state, None, batch)
    assert int(state["step"]) == 2
    for m in (metrics0, metrics):
        assert np.isfinite(float(m["loss"])) and float(m["loss"]) > 0
        assert np.isfinite(float(m["grad_norm"])) and float(m["grad_norm"]) > 0
    assert float(metrics["learning_rate"]) == pytest.approx(float(schedule(1)))
    after = jax.tree.map(np.array, state["params"])
    # Most arrays move; some behind AdaLN-Zero's zero-initialised gates may still have zero
    # gradient (and zero weight decay) after two steps.
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: not np.array_equal(a, b), before, after))
    assert sum(moved) >= len(moved) // 3, f"only {sum(moved)} of {len(moved)} arrays moved"
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(after))
    # EMA: d1 * (d0 * p0 + (1 - d0) * p1) + (1 - d1) * p2 with p1 = p0 (lr 0 at step 0).
    d1 = float(ema_decay_at(0.99, 1))
    expected = jax.tree.map(lambda e, p: d1 * e + (1 - d1) * p, ema_before, after)
    jax.tree.map(
        lambda e, x: np.testing.assert_allclose(e, x, rtol=1e-5, atol=1e-6),
        jax.tree.map(np.array, state["ema"]),
        expected,
    )


def test_train_step_donates_the_old_state(tiny_parts, tiny_step_fn, make_batch):
    graphdef, fresh_state, tx, schedule, diffusion, model_config = tiny_parts
    step_fn = tiny_step_fn
    state = fresh_state()
    old_leaf = jax.tree.leaves(state["params"])[0]
    new_state, _, _ = step_fn(state, None, make_batch(model_config))
    assert old_leaf.is_deleted(), "the train step should donate (reuse) the state's buffers"
    assert not jax.tree.leaves(new_state["params"])[0].is_deleted()


def test_train_step_is_a_pure_function_of_state_and_step(tiny_parts, tiny_step_fn, make_batch):
    graphdef, fresh_state, tx, schedule, diffusion, model_config = tiny_parts
    step_fn = tiny_step_fn
    batch = make_batch(model_config, seed=1)
    a, _, metrics_a = step_fn(fresh_state(), None, batch)
    b, _, metrics_b = step_fn(fresh_state(), None, batch)
    assert float(metrics_a["loss"]) == float(metrics_b["loss"])
    jax.tree.map(np.testing.assert_array_equal, a["params"], b["params"])
