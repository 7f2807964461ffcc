"""Optimizer schedule and masks, EMA update math."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lssvwm.training.ema import ema_decay_at, ema_update
from lssvwm.training.optimizer import default_config, learning_rate_schedule, make_optimizer


def test_ema_update_matches_the_formula_with_warmup():
    rng = np.random.default_rng(0)
    ema = {"a": rng.normal(size=(3, 4)).astype(np.float32), "b": np.float32(2.0)}
    params = {"a": rng.normal(size=(3, 4)).astype(np.float32), "b": np.float32(-1.0)}
    for step, decay in [(0, 0.999), (5, 0.999), (10_000, 0.999), (3, 0.0)]:
        d = min(decay, (1 + step) / (10 + step))
        new = ema_update(ema, params, decay, step)
        for key in ema:
            np.testing.assert_allclose(
                new[key], d * ema[key] + (1 - d) * params[key], rtol=1e-6, atol=1e-7
            )
    assert float(ema_decay_at(0.999, 0)) == pytest.approx(0.1)
    assert float(ema_decay_at(0.999, 10**6)) == pytest.approx(0.999)
    assert float(ema_decay_at(0.0, 100)) == 0.0  # decay 0: the EMA is the weights


def test_ema_of_a_constant_stays_constant_and_converges_to_it():
    ema = {"w": jnp.zeros(3)}
    for step in range(300):
        ema = ema_update(ema, {"w": jnp.ones(3)}, 0.9, step)
    np.testing.assert_allclose(ema["w"], 1.0, atol=1e-6)


def test_schedule_warms_up_linearly_then_decays_to_end_fraction():
    section = default_config()
    section.learning_rate, section.warmup_steps, section.end_fraction = 1e-2, 10, 0.1
    schedule = learning_rate_schedule(section, total_steps=110)
    assert float(schedule(0)) == 0.0
    assert float(schedule(5)) == pytest.approx(5e-3)
    assert float(schedule(10)) == pytest.approx(1e-2)
    assert float(schedule(110)) == pytest.approx(1e-3, rel=1e-4)
    values = [float(schedule(s)) for s in range(10, 111)]
    assert all(a >= b - 1e-9 for a, b in zip(values, values[1:], strict=False))


def test_weight_decay_only_on_matrices_and_clipping():
    section = default_config()
    section.update(learning_rate=1e-1, warmup_steps=0, weight_decay=0.5, grad_clip=1.0)
    tx, _ = make_optimizer(section, total_steps=10)
    params = {"matrix": jnp.ones((2, 2)), "bias": jnp.ones(2)}
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zero, tx.init(params), params)
    assert float(jnp.abs(updates["bias"]).max()) == 0.0  # no decay on vectors
    assert float(jnp.abs(updates["matrix"]).max()) > 0.0
    huge = jax.tree.map(lambda p: 1e6 * jnp.ones_like(p), params)
    state = tx.init(params)
    # Adam normalises magnitudes, so clipping shows in the first moment it keeps.
    _, state = tx.update(huge, state, params)
    mu = state[1][0].mu
    assert float(optax.tree.norm(mu)) == pytest.approx(0.1 * 1.0, rel=1e-4)  # (1 - b1) * clip


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("learning_rate", 0.0, "learning_rate"),
        ("warmup_steps", -1, "warmup_steps"),
        ("ema_decay", 1.0, "ema_decay"),
        ("end_fraction", 2.0, "end_fraction"),
    ],
)
def test_bad_optimizer_values_are_named(field, value, message):
    section = default_config()
    section[field] = value
    with pytest.raises(ValueError, match=message):
        make_optimizer(section, total_steps=10)


def test_unknown_optimizer_field_is_named():
    section = default_config().to_dict()
    section["lr"] = 1.0
    import ml_collections

    with pytest.raises(ValueError, match="lr"):
        make_optimizer(ml_collections.ConfigDict(section), total_steps=10)


def test_the_logged_learning_rate_is_the_one_the_optimizer_applied_after_skipped_steps():
    from lssvwm.training.train_state import apply_gradients

    section = default_config()
    section.update(learning_rate=1e-2, warmup_steps=10, grad_clip=0.0, weight_decay=0.0)
    tx, schedule = make_optimizer(section, total_steps=100)
    params = {"w": jnp.ones((2, 2))}
    grads = {"w": jnp.ones((2, 2))}
    opt_state = tx.init(params)
    for _ in range(3):  # three applied updates...
        _, opt_state = tx.update(grads, opt_state, params)
    # ...and two non-finite steps skipped: the train step is 5, the optimizer's count 3.
    state = {"step": jnp.int32(5), "params": params, "opt_state": opt_state, "ema": params}
    new_state, metrics = apply_gradients(state, grads, tx, 0.9, schedule)
    assert float(metrics["learning_rate"]) == pytest.approx(float(schedule(3)))
    assert float(schedule(3)) != pytest.approx(float(schedule(5)))
    # Adam's first step moves each weight by about the learning rate it applied.
    applied = float(jnp.abs(new_state["params"]["w"] - params["w"]).max())
    assert applied == pytest.approx(float(schedule(3)), rel=1e-3)
