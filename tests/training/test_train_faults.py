"""`lssvwm.train.train` under faults: a foreign or busy run directory (refused before anything
is written), damaged checkpoints and a killed save's leftovers (set aside, the run resumes from
the newest intact step), non-finite steps (skipped, never saved, then a one-line stop), and
signals (the first saves and exits 0, a second ends the process at once).

Most tests need no compile: a run directory "finished" at step 4 (checkpoints of zeros with the
run's shapes and an eval_final.json of that step) makes `train` restore and return. The
model is the tiny quickstart's, attention-only and one layer deep (the fastest to compile)."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lssvwm import train as train_module
from lssvwm.common.checkpointing import CheckpointError, Checkpoints
from lssvwm.common.errors import NonFiniteError, RunDirectoryError
from lssvwm.common.run_directory import WorkdirLock
from lssvwm.config_loading import load_config
from lssvwm.run_spec import RunSpec
from lssvwm.training.build import build
from lssvwm.training.train_step import all_finite

REPO = pathlib.Path(__file__).resolve().parents[2]
FAST = {"model.mixer": "causal_full", "model.depth": 1, "sample.num_windows": 0}


def tiny_spec(data_dir, **overrides) -> RunSpec:
    values = {"data.data_dir": str(data_dir), **FAST, **overrides}
    return RunSpec.from_config(load_config("configs/quickstart.py:tiny", values))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The tiny dataset, built once for the module (seconds)."""
    directory = tmp_path_factory.mktemp("data")
    train_module.open_data(tiny_spec(directory))
    return directory


def finished_run(
    workdir: pathlib.Path, spec: RunSpec, steps=(2, 4), finished: int = 4
) -> pathlib.Path:
    """A run directory as a run of `spec` finished at step `finished` leaves it, made without
    training: config.json, checkpoints of `steps` (zeros of the run's shapes) and
    eval_final.json of `finished`."""
    run = build(spec)
    zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), run.abstract_state)
    checkpoints = Checkpoints(workdir / "checkpoints", keep=10)
    for step in steps:
        state = {**zeros, "step": jnp.asarray(step, jnp.int32)}
        checkpoints.save(step, state, data_state={"step": step}, meta=spec.checkpoint_meta)
    checkpoints.close()
    text = spec.config.to_json_best_effort(indent=2, sort_keys=True)
    (workdir / "config.json").write_text(text)
    (workdir / "eval_final.json").write_text(json.dumps({"step": finished, "val_loss": 1.0}))
    return workdir


def snapshot(directory: pathlib.Path) -> dict:
    """Every file under `directory` with its size and modification time."""
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def one_line(error) -> str:
    message = str(error.value)
    assert "\n" not in message, message
    return message


# ---- the run directory ------------------------------------------------------------------------


def test_another_config_in_a_run_with_checkpoints_is_refused_before_anything_is_written(
    tmp_path, data_dir
):
    workdir = finished_run(tmp_path / "run", tiny_spec(data_dir))
    before = snapshot(workdir)
    other = tiny_spec(data_dir, **{"optimizer.weight_decay": 0.5, "training.steps": 8})
    with pytest.raises(RunDirectoryError) as caught:
        train_module.train(other, workdir)
    message = one_line(caught)
    assert "optimizer.weight_decay: 0.01 in config.json, 0.5 now" in message
    assert "training.steps" not in message  # extending a run is no other config
    assert snapshot(workdir) == before  # no lock file, no config.json, nothing
    longer = tiny_spec(data_dir, **{"training.steps": 8, "training.log_every": 2})
    text = longer.config.to_json_best_effort(indent=2, sort_keys=True)
    train_module.check_run_directory(longer, workdir, text)  # resumable: passes


def test_a_checkpoint_of_another_model_is_refused_before_anything_is_written(tmp_path, data_dir):
    workdir = finished_run(tmp_path / "run", tiny_spec(data_dir))
    (workdir / "config.json").unlink()  # only the checkpoint's meta can tell
    before = snapshot(workdir)
    with pytest.raises(CheckpointError, match=r"model.width: checkpoint 32 vs config 48"):
        train_module.train(tiny_spec(data_dir, **{"model.width": 48}), workdir)
    assert snapshot(workdir) == before


def test_a_second_trainer_on_the_same_run_directory_is_refused_naming_the_holder(
    tmp_path, data_dir
):
    spec = tiny_spec(data_dir)
    workdir = finished_run(tmp_path / "run", spec)
    with WorkdirLock(workdir):
        before = snapshot(workdir)
        with pytest.raises(RunDirectoryError) as caught:
            train_module.train(spec, workdir)
        assert f"in use by another trainer (pid {os.getpid()}," in one_line(caught)
        assert snapshot(workdir) == before


# ---- checkpoint fallback ------------------------------------------------------------------------


def test_damaged_newer_steps_are_moved_aside_and_the_run_resumes_from_the_newest_intact_one(
    tmp_path, data_dir, caplog
):
    spec = tiny_spec(data_dir)
    workdir = finished_run(tmp_path / "run", spec, steps=(2, 4, 5, 6))
    checkpoints = workdir / "checkpoints"
    for path in (checkpoints / "6" / "state" / "d").iterdir():  # cut short (disk full)
        with open(path, "r+b") as handle:
            handle.truncate(5)
    (checkpoints / "5" / "state" / "_METADATA").unlink()  # a file missing
    leftover = checkpoints / "8.orbax-checkpoint-tmp"  # a save killed half-way
    shutil.copytree(checkpoints / "4", leftover)
    config_before = (workdir / "config.json").stat().st_mtime_ns
    caplog.set_level("WARNING")

    results = train_module.train(spec, workdir)

    assert results == {"step": 4, "val_loss": 1.0}  # resumed at 4: finished, nothing computed
    assert sorted(p.name for p in checkpoints.iterdir()) == ["2", "4"]
    moved = sorted((workdir / "checkpoints_damaged").iterdir())
    assert [p.name.split("-")[0] for p in moved] == ["5", "6"]  # never deleted
    assert (moved[1] / "state" / "d").is_dir() and not (moved[0] / "state" / "_METADATA").exists()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(str(leftover) in w and "did not finish" in w for w in warnings), warnings
    for step, where in ((5, moved[0]), (6, moved[1])):
        line = next(w for w in warnings if f"checkpoints/{step} does not restore" in w)
        assert str(where) in line and "resuming from step 4" in line and "\n" not in line
    assert (workdir / "config.json").stat().st_mtime_ns == config_before  # identical: kept
    with WorkdirLock(workdir):  # released on return
        pass


# ---- non-finite steps -------------------------------------------------------------------------


def poison_steps(monkeypatch, steps: set[int]) -> None:
    """Makes the train batches of `steps` (1-based) non-finite: actions outside the model's
    table, which the embedding gathers as NaN."""
    real = train_module.model_batch
    calls = []

    def model_batch(raw, model_config, stream_fields=None):
        if stream_fields is None:  # the held-out windows, not a train batch
            return real(raw, model_config)
        calls.append(1)
        batch = real(raw, model_config, stream_fields)
        if len(calls) in steps:
            batch["actions"] = np.full_like(batch["actions"], 99)
        return batch

    monkeypatch.setattr(train_module, "model_batch", model_batch)


def test_non_finite_steps_are_skipped_counted_never_saved_and_too_many_stop(
    tmp_path, data_dir, monkeypatch
):
    """Steps 2 and 3 non-finite, at most 2 in a row: step 2 is skipped (its checkpoint holds the
    state of step 1, finite), step 3 ends the run in one line naming steps and quantities."""
    spec = tiny_spec(
        data_dir,
        **{"training.steps": 8, "training.max_consecutive_nonfinite": 2},
    )
    workdir = tmp_path / "run"
    poison_steps(monkeypatch, {2, 3})
    with pytest.raises(NonFiniteError) as caught:
        train_module.train(spec, workdir)
    message = one_line(caught)
    assert message.startswith("steps 2-3: 2 non-finite steps in a row, all skipped")
    assert "step 3: loss is nan, grad_norm is nan" in message
    assert message.endswith("the newest checkpoint is step 2")
    checkpoints = Checkpoints(workdir / "checkpoints", read_only=True)
    assert checkpoints.all_steps() == [2]
    saved, data_state, _ = checkpoints.restore(2, build(spec).abstract_state)
    checkpoints.close()
    assert bool(all_finite(saved)) and int(saved["step"]) == 2 and data_state["step"] == 2
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["nonfinite_steps"]) for r in records] == [(1, 0), (2, 1), (3, 2)]
    assert records[1]["loss"] == "nan" and np.isfinite(records[0]["loss"])
    with WorkdirLock(workdir):  # released on the error
        pass


# ---- signals ----------------------------------------------------------------------------------


# The first SIGTERM (finish the step, save it, exit 0 without a traceback) is tested on the real
# CLI in tests/training/test_train_e2e.py::test_sigterm_saves_the_step_it_stopped_at.


SECOND_SIGNAL = """
import sys, time
from lssvwm.train import StopRequest
stop = StopRequest()
stop.install()
print("ready", flush=True)
while stop.signum is None:
    time.sleep(0.01)  # a step in flight
print("first", stop.name, flush=True)
time.sleep(60)  # a long call (a compile, a save) the second signal must not wait for
print("not stopped", flush=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_ends_the_process_at_once_by_the_default_action(signum):
    process = subprocess.Popen(
        [sys.executable, "-c", SECOND_SIGNAL],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "ready"
    process.send_signal(signum)
    assert process.stdout.readline().split() == ["first", signal.Signals(signum).name]
    began = time.monotonic()
    process.send_signal(signum)
    out, err = process.communicate(timeout=30)
    assert time.monotonic() - began < 5
    assert process.returncode == -signum  # the kernel's default action: no Python ran
    assert "not stopped" not in out and "Traceback" not in err
