"""Checkpoint round trip (params, optimizer state, EMA, step, data position) and clear errors."""

import shutil

import jax
import numpy as np
import pytest

from lssvwm.common.checkpointing import CheckpointError, Checkpoints
from lssvwm.training.train_state import abstract_train_state

META = {"model": {"width": 32, "block_sizes": ["full", [1, 1]]}, "diffusion": {"target": "v"}}


@pytest.fixture(scope="module")
def trained_state(tiny_parts, tiny_step_fn, make_batch):
    """A state after 3 steps (non-trivial optimizer moments and EMA)."""
    graphdef, fresh_state, tx, schedule, diffusion, model_config = tiny_parts
    step_fn = tiny_step_fn
    state = fresh_state()
    for i in range(3):
        state, _, _ = step_fn(state, None, make_batch(model_config, seed=i))
    return jax.tree.map(np.array, state)


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_restores_everything(tmp_path, trained_state):
    checkpoints = Checkpoints(tmp_path / "ckpt", keep=2)
    checkpoints.save(3, trained_state, data_state={"step": 17}, meta=META)
    checkpoints.close()
    reopened = Checkpoints(tmp_path / "ckpt", keep=2)
    assert reopened.latest_step() == 3
    state, data_state, meta = reopened.restore_latest(abstract_train_state(trained_state), META)
    _assert_trees_equal(state, trained_state)  # params, opt_state, ema, step, rest
    assert int(state["step"]) == 3
    assert not np.array_equal(  # the EMA is its own tree, not a copy of the params
        jax.tree.leaves(state["ema"])[0], jax.tree.leaves(state["params"])[0]
    )
    assert data_state == {"step": 17}
    assert meta == META


def test_keeps_the_newest_n_and_no_checkpoint_gives_none(tmp_path, trained_state):
    checkpoints = Checkpoints(tmp_path / "ckpt", keep=2)
    assert checkpoints.restore_latest(abstract_train_state(trained_state)) is None
    for step in (1, 2, 3):
        checkpoints.save(step, trained_state, data_state={"step": step}, meta=META)
    assert checkpoints.all_steps() == [2, 3]


def test_corrupt_checkpoint_gives_a_clear_error(tmp_path, trained_state):
    checkpoints = Checkpoints(tmp_path / "ckpt")
    checkpoints.save(5, trained_state, data_state={"step": 5}, meta=META)
    checkpoints.close()
    state_dir = tmp_path / "ckpt" / "5" / "state"
    # Damage the array store: every data file truncated to nothing.
    damaged = 0
    for path in state_dir.rglob("*"):
        if path.is_file() and "METADATA" not in path.name:
            path.write_bytes(b"")
            damaged += 1
    assert damaged
    with pytest.raises(CheckpointError, match=r"ckpt/5.*cannot be restored"):
        Checkpoints(tmp_path / "ckpt").restore_latest(abstract_train_state(trained_state), META)
    shutil.rmtree(state_dir)
    with pytest.raises(CheckpointError, match=r"ckpt/5"):
        Checkpoints(tmp_path / "ckpt").restore_latest(abstract_train_state(trained_state), META)


def test_incompatible_config_names_the_differing_keys(tmp_path, trained_state):
    checkpoints = Checkpoints(tmp_path / "ckpt")
    checkpoints.save(1, trained_state, data_state={"step": 1}, meta=META)
    other = {"model": {"width": 64, "block_sizes": ["full", [1, 1]]}, "diffusion": {"target": "v"}}
    with pytest.raises(CheckpointError, match=r"model.width: checkpoint 32 vs config 64"):
        checkpoints.restore_latest(abstract_train_state(trained_state), other)


def test_unchecked_keys_may_differ_or_be_absent(tmp_path, trained_state):
    checkpoints = Checkpoints(tmp_path / "ckpt")
    checkpoints.save(1, trained_state, data_state={"step": 1}, meta=META)
    newer = {**META, "model": {**META["model"], "remat": True}}  # a field the checkpoint lacks
    with pytest.raises(CheckpointError, match=r"model.remat: checkpoint '<missing>' vs config"):
        checkpoints.restore_latest(abstract_train_state(trained_state), newer)
    _, data_state, _ = checkpoints.restore_latest(
        abstract_train_state(trained_state), newer, unchecked=("model.remat",)
    )
    assert data_state == {"step": 1}


def test_state_of_other_shapes_gives_a_clear_error(tmp_path, trained_state):
    checkpoints = Checkpoints(tmp_path / "ckpt")
    checkpoints.save(1, trained_state, data_state={"step": 1}, meta=META)
    abstract = abstract_train_state(trained_state)
    wrong = jax.tree.map(lambda s: jax.ShapeDtypeStruct((*s.shape, 2), s.dtype), abstract)
    with pytest.raises(CheckpointError, match="cannot be restored"):
        checkpoints.restore_latest(wrong, META)
