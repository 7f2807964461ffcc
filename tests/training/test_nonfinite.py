"""The non-finite guard: the train step skips a non-finite step on device (state, optimizer and
EMA unchanged, the step count moving on), and the host's NonfiniteGuard counts and stops."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from micro_model import BATCH, WINDOW, micro_config

from lssvwm.common.errors import LssvwmError, NonFiniteError
from lssvwm.diffusion import DiffusionConfig
from lssvwm.models import WorldModel
from lssvwm.training.metrics import NonfiniteGuard
from lssvwm.training.optimizer import OptimizerConfig, make_optimizer
from lssvwm.training.train_state import init_train_state, split_model
from lssvwm.training.train_step import NONFINITE_BITS, all_finite, make_train_step

NAN = float("nan")


def metrics(loss=0.5, grad_norm=1.0, param_norm=2.0) -> dict:
    """What the train step returns for the guard (its `nonfinite` bits from the three)."""
    values = {"loss": loss, "grad_norm": grad_norm, "param_norm": param_norm}
    flags = sum(bit for name, bit in NONFINITE_BITS.items() if not np.isfinite(values[name]))
    return {**{k: jnp.float32(v) for k, v in values.items()}, "nonfinite": jnp.int32(flags)}


def test_stop_names_the_first_non_finite_step_and_quantity_in_one_line():
    guard = NonfiniteGuard("stop")
    guard.update(metrics(), 1)
    assert guard.check(1, newest_checkpoint=None) == 0
    guard.update(metrics(grad_norm=NAN, param_norm=float("inf")), 2)
    guard.update(metrics(), 3)  # a finite step after it does not hide it
    with pytest.raises(NonFiniteError) as caught:
        guard.check(3, newest_checkpoint=0)
    message = str(caught.value)
    assert message.startswith("step 2: grad_norm is nan, param_norm is inf")
    assert "loss" not in message and "the newest checkpoint is step 0" in message
    assert "\n" not in message and isinstance(caught.value, LssvwmError)


def test_skip_counts_and_stops_after_the_consecutive_limit():
    guard = NonfiniteGuard("skip", max_consecutive=3)
    for step, loss in enumerate([0.5, NAN, NAN, 0.4, NAN, NAN], start=1):
        guard.update(metrics(loss=loss, grad_norm=1.0 if np.isfinite(loss) else NAN), step)
    assert guard.check(6, newest_checkpoint=4) == 4  # two runs of two: under the limit
    guard.update(metrics(loss=float("inf"), grad_norm=NAN), 7)
    guard.update(metrics(), 8)  # the run ended at 3 in a row: still a stop
    with pytest.raises(NonFiniteError) as caught:
        guard.check(8, newest_checkpoint=None)
    message = str(caught.value)
    assert message.startswith("steps 5-7: 3 non-finite steps in a row, all skipped")
    assert "step 7: loss is inf, grad_norm is nan" in message
    assert "no checkpoint was saved yet" in message and "\n" not in message


def test_guard_rejects_unknown_modes():
    with pytest.raises(ValueError, match="training.nonfinite"):
        NonfiniteGuard("ignore")


def test_all_finite_reads_every_float_leaf():
    tree = {"a": jnp.ones(3), "count": jnp.int32(4), "b": {"c": jnp.zeros((2, 2))}}
    assert bool(all_finite(tree))
    tree["b"]["c"] = tree["b"]["c"].at[1, 1].set(jnp.inf)
    assert not bool(all_finite(tree))


@pytest.fixture(scope="module")
def micro_step():
    """(train step, fresh state factory, batch factory) of the one-layer micro model (its
    attention-only variant: the guard does not depend on the mixer, and it compiles fastest)."""
    config = micro_config(mixer="causal_full")
    tx, schedule = make_optimizer(OptimizerConfig(warmup_steps=0), total_steps=10)
    build = lambda: WorldModel(config, rngs=nnx.Rngs(0))  # noqa: E731
    graphdef, _, _ = split_model(nnx.eval_shape(build))
    step = make_train_step(
        graphdef, DiffusionConfig(), tx, ema_decay=0.9, seed=0, schedule=schedule
    )
    fresh_state = jax.jit(lambda: init_train_state(build(), tx))  # one compile, not op by op

    def batch(seed, actions=None):
        rng = np.random.default_rng(seed)
        h, w = config.image_size
        frames = rng.integers(0, 256, (BATCH, WINDOW, h, w, 3), dtype=np.uint8)
        if actions is None:
            actions = rng.integers(0, config.num_actions, (BATCH, WINDOW), dtype=np.int32)
        return {"frames": frames, "actions": actions}

    return step, fresh_state, batch


def _host(tree):
    return jax.tree.map(np.array, tree)


def test_a_non_finite_step_changes_nothing_but_the_step(micro_step):
    step_fn, fresh_state, batch = micro_step
    state, _, first = step_fn(fresh_state(), None, batch(0))
    assert int(first["nonfinite"]) == 0
    before = _host(state)
    # An action outside the embedding table gathers NaN (jnp.take fills): the loss, gradients
    # and the would-be parameters are all NaN.
    poisoned = batch(1, actions=np.full((BATCH, WINDOW), 99, np.int32))
    state, _, bad = step_fn(state, None, poisoned)
    assert int(bad["nonfinite"]) == sum(NONFINITE_BITS.values())
    assert not np.isfinite(float(bad["loss"]))
    after = _host(state)
    assert int(after["step"]) == 2
    for key in ("params", "opt_state", "ema", "rest"):
        for a, b in zip(jax.tree.leaves(before[key]), jax.tree.leaves(after[key]), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=key)
    state, _, good = step_fn(state, None, batch(2))  # training goes on from there
    assert int(good["nonfinite"]) == 0 and np.isfinite(float(good["loss"]))
    assert bool(all_finite(state)) and int(state["step"]) == 3
    pairs = zip(
        jax.tree.leaves(_host(state)["params"]), jax.tree.leaves(after["params"]), strict=True
    )
    assert any(not np.array_equal(a, b) for a, b in pairs)
