"""State carrying: carried windows equal one long window (SSM, conv and KV carried); the stateful
train step trains from the carried clean-pass state, resets per slot, matches the plain step
when every window restarts, compiles once per curriculum shape; checkpoints restore the carry
and the slots' episode positions, and training continues exactly."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from micro_model import BATCH, WINDOW, merged, micro_config, micro_model, run, window_inputs

from lssvwm.common.checkpointing import Checkpoints
from lssvwm.common.frames import uint8_to_model_range
from lssvwm.diffusion import DiffusionConfig, diffusion_forcing_loss
from lssvwm.training.optimizer import default_config as optimizer_config
from lssvwm.training.optimizer import make_optimizer
from lssvwm.training.state_carrying import (
    StateConfig,
    clean_pass_cache,
    init_carry,
    slot_resets,
)
from lssvwm.training.state_policies import ResetPolicy
from lssvwm.training.train_state import abstract_train_state, init_train_state
from lssvwm.training.train_step import make_train_step

DIFFUSION = DiffusionConfig(clean_prefix_prob=0.5, clean_prefix_min_fraction=0.25)


@functools.partial(jax.jit, static_argnums=(0, 1))
def clean_pass(graphdef, config, state, frames, actions, cache, rng):
    return clean_pass_cache(nnx.merge(graphdef, state), frames, actions, cache, config, rng)


@functools.partial(jax.jit, static_argnums=(0,))
def carried_loss(graphdef, params, rest, frames_uint8, actions, cache, step):
    """The diffusion-forcing loss of step `step`'s draw from `cache` (the stateful step's)."""
    model = nnx.merge(graphdef, params, rest)
    loss, _ = diffusion_forcing_loss(
        lambda x, n, a: model.prefill(x, n, a, cache)[0],
        {"frames": uint8_to_model_range(frames_uint8), "actions": actions},
        jax.random.fold_in(jax.random.PRNGKey(0), step),
        DIFFUSION,
        chunk=1,
    )
    return loss


def _drop(cache, part):
    """The cache with one part emptied in every layer: "ssm", "conv" or "kv"."""
    layers = []
    for layer in cache.layers:
        ssm, kv = layer.ssm, layer.kv
        if part in ("ssm", "conv"):
            ssm = ssm._replace(**{part: jnp.zeros_like(getattr(ssm, part))})
        else:
            kv = kv.replace(filled=jnp.zeros_like(kv.filled))
        layers.append(layer._replace(ssm=ssm, kv=kv))
    return cache._replace(layers=tuple(layers))


def test_two_carried_windows_equal_one_window_of_double_length():
    graphdef, state = micro_model()
    model = merged()
    frames, level, actions = window_inputs(2 * WINDOW)
    first, second = slice(0, WINDOW), slice(WINDOW, 2 * WINDOW)
    # The carried state comes from the clean pass over window 1: level 0 in the long window.
    level = level.at[:, first].set(0.0)
    long_window = run(graphdef, "__call__", state, frames, level, actions)
    carried = clean_pass(
        graphdef,
        DIFFUSION,
        state,
        frames[:, first],
        actions[:, first],
        model.init_cache(BATCH),
        jax.random.PRNGKey(0),
    )
    args = (frames[:, second], level[:, second], actions[:, second])
    continued, _ = run(graphdef, "prefill", state, *args, carried)
    np.testing.assert_allclose(continued, long_window[:, second], atol=2e-5, rtol=1e-5)
    scale = float(jnp.abs(long_window[:, second]).mean())
    for part in ("ssm", "conv", "kv"):  # each carried part matters
        without, _ = run(graphdef, "prefill", state, *args, _drop(carried, part))
        assert float(jnp.abs(without - long_window[:, second]).max()) > 1e-3 * scale, part
    # A per-slot reset: slot 1 starts window 2 afresh, the others continue.
    mask = np.array([False, True, False])
    restarted = ResetPolicy().initial_state(model, carried, mask)
    mixed, _ = run(graphdef, "prefill", state, *args, restarted)
    fresh, _ = run(graphdef, "prefill", state, *args, model.init_cache(BATCH))
    np.testing.assert_array_equal(mixed[~mask], continued[~mask])
    np.testing.assert_allclose(mixed[mask], fresh[mask], atol=1e-6)


# ---- the stateful train step -------------------------------------------------------------------


def _parts():
    graphdef, state = micro_model()
    tx, schedule = make_optimizer(optimizer_config(), total_steps=20)
    return graphdef, state, tx, schedule


def _fresh_state():
    """(train state, carry) at step 0."""
    graphdef, model_state, tx, _ = _parts()
    # Copies: the step donates its input, and micro_model's arrays are shared (cached).
    state = jax.tree.map(jnp.copy, init_train_state(nnx.merge(graphdef, model_state), tx))
    return state, init_carry(merged(), BATCH)


def _stream_batch(start_frame, episode_id=(7, 8, 9), length=WINDOW, seed=0):
    frames, _, actions = window_inputs(length, seed=seed)
    start_frame = np.broadcast_to(np.asarray(start_frame, np.int32), (BATCH,))
    return {
        "frames": np.asarray((frames + 1) * 127.5, np.uint8),
        "actions": actions,
        "episode_start": start_frame == 0,
        "episode_id": np.asarray(episode_id, np.int32),
        "start_frame": start_frame,
    }


@functools.cache
def stateful_step(**state_fields):
    graphdef, _, tx, schedule = _parts()
    config = StateConfig.from_config(state_fields)
    return make_train_step(
        graphdef, DIFFUSION, tx, config, ema_decay=0.9, seed=0, schedule=schedule
    )


CARRY = dict(carry=True)


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_carried_step_trains_from_the_clean_pass_state_of_the_previous_window():
    graphdef, _, _, _ = _parts()
    step = stateful_step(**CARRY)
    state, carry = _fresh_state()
    first, second = _stream_batch(0, seed=1), _stream_batch(WINDOW, seed=2)
    params_1 = jax.tree.map(jnp.copy, state["params"])
    state, carry, metrics = step(state, carry, first)
    assert float(metrics["reset_fraction"]) == 1.0 and int(metrics["stream_breaks"]) == 0
    # Episode starts: the window starts from the empty state, as in the plain trainer.
    empty = merged().init_cache(BATCH)
    loss = carried_loss(
        graphdef, params_1, state["rest"], first["frames"], first["actions"], empty, 0
    )
    np.testing.assert_allclose(float(metrics["loss"]), float(loss), rtol=1e-5)
    np.testing.assert_array_equal(carry["next_frame"], [WINDOW] * BATCH)
    np.testing.assert_array_equal(carry["episode_id"], [7, 8, 9])
    # The carry is the clean pass of window 1 from the empty state (parameters before update).
    expected = clean_pass(
        graphdef,
        DIFFUSION,
        nnx.state(nnx.merge(graphdef, params_1, state["rest"])),
        uint8_to_model_range(first["frames"]),
        first["actions"],
        merged().init_cache(BATCH),
        jax.random.PRNGKey(0),
    )
    for got, want in zip(jax.tree.leaves(carry["cache"]), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # Window 2 continues: its loss is the diffusion-forcing loss from the carried state.
    # (copies: the step donates its input state)
    carried, params_2, rest = jax.tree.map(
        jnp.copy, (carry["cache"], state["params"], state["rest"])
    )
    state, carry, metrics = step(state, carry, second)
    assert float(metrics["reset_fraction"]) == 0.0 and int(metrics["stream_breaks"]) == 0
    loss = carried_loss(graphdef, params_2, rest, second["frames"], second["actions"], carried, 1)
    np.testing.assert_allclose(float(metrics["loss"]), float(loss), rtol=1e-5)


def test_a_slot_whose_window_does_not_continue_is_reset_and_counted():
    step = stateful_step(**CARRY)
    state, carry, _ = step(*_fresh_state(), _stream_batch(0))
    # Slot 1 jumps to another episode mid-way: not an episode start, not a continuation.
    state, carry, metrics = step(state, carry, _stream_batch(WINDOW, episode_id=(7, 5, 9)))
    assert int(metrics["stream_breaks"]) == 1
    assert float(metrics["reset_fraction"]) == pytest.approx(1 / 3)


def test_slot_resets_follow_the_policy_and_the_stream():
    carry = init_carry(merged(), BATCH)
    carry = {**carry, "episode_id": jnp.array([7, 8, 9]), "next_frame": jnp.full(BATCH, WINDOW)}
    batch = _stream_batch(WINDOW)  # every slot continues, none starts an episode
    rng = jax.random.PRNGKey(0)
    cases = {
        (): [0, 0, 0],
        (("reset", "every"), ("reset_every", 1)): [1, 1, 1],  # = a fresh state per window
        (("reset", "every"), ("reset_every", 2)): [0, 0, 0],  # window index 1
    }
    for fields, expected in cases.items():
        config = StateConfig.from_config(dict(carry=True, **dict(fields)))
        reset, breaks = slot_resets(config, carry, batch, WINDOW, rng)
        np.testing.assert_array_equal(reset, np.asarray(expected, bool))
        assert int(breaks) == 0
    no_carry = StateConfig.from_config(dict(initial="noise"))
    np.testing.assert_array_equal(slot_resets(no_carry, carry, batch, WINDOW, rng)[0], [1, 1, 1])
    with pytest.raises(ValueError, match="episode_start"):
        slot_resets(StateConfig(carry=True), carry, {"frames": batch["frames"]}, WINDOW, rng)


def test_checkpoint_round_trip_of_carry_and_slot_positions_resumes_exactly(tmp_path):
    step = stateful_step(**CARRY)
    state, carry = _fresh_state()
    for i in range(2):
        state, carry, _ = step(state, carry, _stream_batch(i * WINDOW, seed=i))
    saved = jax.tree.map(np.array, {**state, "carry": carry})  # as the trainer saves them
    fresh, fresh_carry = _fresh_state()
    checkpoints = Checkpoints(tmp_path / "ckpt")
    checkpoints.save(2, saved, data_state={"step": 2}, meta={})
    checkpoints.close()
    restored, data_state, _ = Checkpoints(tmp_path / "ckpt").restore_latest(
        abstract_train_state({**fresh, "carry": fresh_carry}), {}
    )
    _assert_trees_equal(restored, saved)
    assert data_state == {"step": 2}
    np.testing.assert_array_equal(restored["carry"]["next_frame"], [2 * WINDOW] * BATCH)
    np.testing.assert_array_equal(restored["carry"]["episode_id"], [7, 8, 9])
    assert all(layer.kv.ring for layer in restored["carry"]["cache"].layers)
    third = _stream_batch(2 * WINDOW, seed=5)

    def split(tree):
        tree = jax.tree.map(jnp.asarray, tree)
        return {k: v for k, v in tree.items() if k != "carry"}, tree["carry"]

    uninterrupted, carry_u, metrics_u = step(*split(saved), third)
    resumed, carry_r, metrics_r = step(*split(restored), third)
    assert int(metrics_r["stream_breaks"]) == 0
    assert float(metrics_u["loss"]) == float(metrics_r["loss"])
    _assert_trees_equal((resumed, carry_r), (uninterrupted, carry_u))


def test_compiles_once_per_curriculum_shape_and_fit_carry_follows_the_batch():
    step = stateful_step(**CARRY)
    state, carry, _ = step(*_fresh_state(), _stream_batch(0))  # stage 1: WINDOW frames
    compiled = step.trace_count()
    for i in range(3):  # stage 2: 2 * WINDOW frames, same batch: one more compile, once
        batch = _stream_batch(i * 2 * WINDOW, length=2 * WINDOW, seed=i)
        state, carry, metrics = step(state, carry, batch)
        assert int(metrics["stream_breaks"]) == 0
    assert step.trace_count() == compiled + 1
    state, carry, _ = step(state, carry, _stream_batch(0))  # back to a known shape: no compile
    assert step.trace_count() == compiled + 1


def test_state_config_validation():
    with pytest.raises(ValueError, match="set state.carry=True"):
        StateConfig.from_config(dict(reset="every", reset_every=2))
    with pytest.raises(ValueError, match="carry_sorce"):
        StateConfig.from_config(dict(carry=True, carry_sorce="clean"))
    with pytest.raises(ValueError, match="grows"):
        StateConfig(carry=True).check_model(micro_config(mixer="causal_full"))
    with pytest.raises(ValueError, match="has none"):
        StateConfig(policy=ResetPolicy(initial="passing")).check_model(
            micro_config(mixer="causal_window")
        )
    assert not StateConfig().stateful and StateConfig(carry=True).stateful
    assert StateConfig(policy=ResetPolicy(initial="noise")).stateful
