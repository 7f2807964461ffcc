"""A damaged newest checkpoint falls back to the newest one that restores; another config never
does (lssvwm.common.checkpointing.Checkpoints.restore_newest), on small pytrees."""

import pathlib

import jax
import numpy as np
import pytest

from lssvwm.common.checkpointing import CheckpointError, Checkpoints, DamagedCheckpointError

META = {"model": {"width": 8}}


def state_at(step: int) -> dict:
    return {"step": np.int32(step), "params": {"w": np.full((4, 4), step, np.float32)}}


TARGET = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype), state_at(0))


def saved_run(directory: pathlib.Path, steps=(2, 4, 6)) -> pathlib.Path:
    checkpoints = Checkpoints(directory, keep=5)
    for step in steps:
        checkpoints.save(step, state_at(step), data_state={"step": step}, meta=META)
    checkpoints.close()
    return directory


def truncate_arrays(step_dir: pathlib.Path) -> None:
    """What a disk-full or a cut copy leaves: the array files of the state cut short."""
    for path in (step_dir / "state" / "d").iterdir():
        with open(path, "r+b") as handle:
            handle.truncate(3)


def restore(directory, **kwargs):
    checkpoints = Checkpoints(directory, keep=5)
    try:
        return checkpoints.restore_newest(lambda step: TARGET, META, **kwargs)
    finally:
        checkpoints.close()


def test_the_newest_step_that_restores_is_used_and_the_newer_damaged_ones_named(tmp_path):
    directory = saved_run(tmp_path / "ckpt")
    truncate_arrays(directory / "6")
    for path in (directory / "4" / "meta").iterdir():
        path.unlink()  # a step without its meta item
    state, data_state, meta, step, damaged = restore(directory)
    assert step == 2 and int(state["step"]) == 2 and data_state == {"step": 2} and meta == META
    np.testing.assert_array_equal(state["params"]["w"], np.full((4, 4), 2))
    assert [error.step for error in damaged] == [6, 4]
    assert all(isinstance(error, DamagedCheckpointError) for error in damaged)
    assert "\n" not in damaged[0].cause and "\n" not in damaged[1].cause
    assert sorted(p.name for p in directory.iterdir()) == ["2", "4", "6"]  # the caller moves


def test_no_checkpoint_gives_none_and_an_intact_newest_is_used(tmp_path):
    assert restore(tmp_path / "empty") is None
    *_, step, damaged = restore(saved_run(tmp_path / "ckpt"))
    assert step == 6 and damaged == []


def test_another_config_stops_at_once_rather_than_falling_back(tmp_path):
    directory = saved_run(tmp_path / "ckpt")
    checkpoints = Checkpoints(directory)
    with pytest.raises(CheckpointError, match=r"model.width: checkpoint 8 vs config 16") as caught:
        checkpoints.restore_newest(lambda step: TARGET, {"model": {"width": 16}})
    assert not isinstance(caught.value, DamagedCheckpointError)
    other_shapes = {
        "step": TARGET["step"],
        "params": {"w": jax.ShapeDtypeStruct((5, 4), np.float32)},
    }
    with pytest.raises(CheckpointError, match="cannot be restored"):
        checkpoints.restore_newest(lambda step: other_shapes, META)
    checkpoints.close()


def test_when_no_step_restores_the_newest_error_is_raised_and_nothing_is_named_damaged(tmp_path):
    directory = saved_run(tmp_path / "ckpt", steps=(2, 4))
    truncate_arrays(directory / "2")
    truncate_arrays(directory / "4")
    with pytest.raises(DamagedCheckpointError, match=r"ckpt/4 cannot be restored") as caught:
        restore(directory)
    assert caught.value.step == 4


def test_another_process_failing_counts_as_damage_everywhere(tmp_path):
    """Multi-host: `agree` is "did any process fail"; every process falls back together."""
    directory = saved_run(tmp_path / "ckpt", steps=(2, 4))
    answers = iter([True, False])  # step 4 failed elsewhere, step 2 restored everywhere
    *_, step, damaged = restore(directory, agree=lambda failed: next(answers))
    assert step == 2 and [error.step for error in damaged] == [4]


def test_read_only_checkpoints_create_nothing_and_check_the_newest_meta(tmp_path):
    absent = tmp_path / "absent"
    Checkpoints(absent, read_only=True).close()
    assert not absent.exists()
    directory = saved_run(tmp_path / "ckpt", steps=(2,))
    checkpoints = Checkpoints(directory, read_only=True)
    checkpoints.check_newest_meta(META)
    with pytest.raises(CheckpointError, match=r"ckpt/2 was trained with a different config"):
        checkpoints.check_newest_meta({"model": {"width": 16}})
    checkpoints.close()
