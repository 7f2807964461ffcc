"""`python -m lssvwm.train` end to end on the tiny quickstart: files, contract fields, resume."""

import json
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from lssvwm.common.checkpointing import Checkpoints
from lssvwm.config_loading import load_config
from lssvwm.evaluation.loading import load_run
from lssvwm.train import train_and_evaluate

REPO = pathlib.Path(__file__).resolve().parents[2]
CONTRACT = (
    "step",
    "val_loss",
    "val_loss_shuffled_actions",
    "tf_next_frame_psnr",
    "copy_last_frame_psnr",
)


# Held-out figures at step 2 and at the end (step 4): the end's are the final ones, once.
EVAL_EVERY = 2


def tiny_config(data_dir):
    return load_config(
        "configs/quickstart.py:tiny",
        {"data.data_dir": str(data_dir), "training.eval_every": EVAL_EVERY},
    )


def train_command(workdir, data_dir, *overrides) -> list[str]:
    """`python -m lssvwm.train` of the tiny quickstart in `workdir` with its own data."""
    return [
        sys.executable,
        "-m",
        "lssvwm.train",
        "--config=configs/quickstart.py:tiny",
        f"--workdir={workdir}",
        f"--config.data.data_dir={data_dir}",
        f"--config.training.eval_every={EVAL_EVERY}",
        *overrides,
    ]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One CLI run of the tiny quickstart (4 steps, checkpoints at 2 and 4) with its own data."""
    root = tmp_path_factory.mktemp("train")
    workdir, data_dir = root / "run", root / "data"
    command = train_command(workdir, data_dir)
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir, data_dir, result.stderr


def test_cli_run_writes_every_output(finished_run):
    workdir, data_dir, log = finished_run
    config = json.loads((workdir / "config.json").read_text())
    assert config["data"]["data_dir"] == str(data_dir) and config["training"]["steps"] == 4
    assert any(data_dir.rglob("*.array_record*")), "data was not built into data.data_dir"
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]
    # The periodic evaluation at step 2; the last step's is eval_final's, written once.
    assert [r["step"] for r in records if "eval/val_loss" in r] == [2, 4]
    for record in records:
        if "loss" in record:
            assert {"step", "loss", "steps_per_sec", "learning_rate", "grad_norm"} <= set(record)
            assert np.isfinite(record["loss"])
    assert list((workdir / "tb").glob("events.out.tfevents.*")), "no TensorBoard event file"
    final = json.loads((workdir / "eval_final.json").read_text())
    assert set(CONTRACT) <= set(final) and final["step"] == 4
    for key in CONTRACT[1:]:
        assert np.isfinite(final[key])
    assert final["copy_last_frame_psnr"] > 5.0
    assert (workdir / "samples" / "step_4.gif").stat().st_size > 0
    assert Checkpoints(workdir / "checkpoints").all_steps() == [2, 4]
    assert "step 4/4" in log  # the progress line


def test_second_run_resumes_without_retraining_or_rebuilding(finished_run, tmp_path):
    workdir, data_dir, _ = finished_run
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy)
    metrics_before = (copy / "metrics.jsonl").read_text()
    data_files = {p: p.stat().st_mtime_ns for p in data_dir.rglob("*") if p.is_file()}
    results = train_and_evaluate(tiny_config(data_dir), copy)
    assert results == json.loads((workdir / "eval_final.json").read_text())
    assert (copy / "metrics.jsonl").read_text() == metrics_before  # no step was trained again
    assert {p: p.stat().st_mtime_ns for p in data_dir.rglob("*") if p.is_file()} == data_files


def _params(workdir, step):
    checkpoints = Checkpoints(workdir / "checkpoints")
    manager = checkpoints._manager
    import orbax.checkpoint as ocp

    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    return restored["state"]


@pytest.mark.slow  # ~35 s: a second compile of the train step, evaluation and sampler
def test_interrupted_run_resumes_to_identical_weights(finished_run, tmp_path):
    """4 steps straight vs 2 steps + restart + 2 steps: identical params, EMA, optimizer, data."""
    workdir, data_dir, _ = finished_run
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy)
    shutil.rmtree(copy / "checkpoints" / "4")  # as if killed between the step-2 and step-4 saves
    (copy / "eval_final.json").unlink()
    train_and_evaluate(tiny_config(data_dir), copy)
    straight, resumed = _params(workdir, 4), _params(copy, 4)
    assert jax.tree.structure(straight) == jax.tree.structure(resumed)
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    data = lambda d: json.loads((d / "checkpoints" / "4" / "data" / "metadata").read_text())
    assert data(copy) == data(workdir) == {"step": 4}


def _fresh_state_and_abstract(config, seed):
    from lssvwm.models import WorldModel, WorldModelConfig
    from lssvwm.training.optimizer import make_optimizer
    from lssvwm.training.train_state import init_train_state

    model_config = WorldModelConfig.from_mapping(config.model)
    tx, _ = make_optimizer(config.optimizer, 10)
    state = init_train_state(WorldModel(model_config, rngs=nnx.Rngs(seed)), tx)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
    return state, abstract, model_config


def test_warm_start_takes_weights_and_keeps_a_fresh_optimizer(finished_run, tmp_path):
    from lssvwm.train import warm_start

    workdir, data_dir, _ = finished_run
    config = tiny_config(data_dir)
    state, abstract, model_config = _fresh_state_and_abstract(config, seed=7)
    meta_model = json.loads(json.dumps(model_config.to_dict()))
    started = warm_start(state, abstract, str(workdir), tmp_path / "new", meta_model)
    source, _, _ = Checkpoints(workdir / "checkpoints").restore_latest(abstract)
    for key in ("params", "ema", "rest"):
        jax.tree.map(np.testing.assert_array_equal, started[key], source[key])
    assert int(started["step"]) == 0 and int(source["step"]) == 4
    jax.tree.map(np.testing.assert_array_equal, started["opt_state"], state["opt_state"])
    with pytest.raises(Exception, match="same network"):  # the weights of another network
        other = dict(meta_model, width=meta_model["width"] * 2)
        warm_start(state, abstract, str(workdir), tmp_path / "new", other)
    with pytest.raises(FileNotFoundError, match="init_from"):
        warm_start(state, abstract, str(tmp_path / "absent"), tmp_path / "new", meta_model)
    with pytest.raises(ValueError, match="own --workdir"):
        warm_start(state, abstract, str(workdir), workdir, meta_model)


def test_sigterm_saves_the_step_it_stopped_at(finished_run, tmp_path):
    """A SIGTERM (a preempted job) between periodic checkpoints saves the step it stopped at
    (resuming from a checkpoint is exact: test_second_run_resumes..., test_checkpointing.py)."""
    import signal
    import time

    _, data_dir, _ = finished_run
    workdir = tmp_path / "run"
    command = train_command(
        workdir,
        data_dir,
        "--config.training.steps=100000",
        "--config.training.checkpoint_every=100000",
        "--config.training.log_every=1",
    )
    process = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    for line in process.stderr:  # the progress lines arrive on stderr (absl logging)
        if "step 3/100000" in line:
            break
        assert time.monotonic() < deadline, "training did not reach step 3"
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=300)
    assert process.returncode == 0, rest[-3000:]  # a requested stop is no failure
    assert "Traceback" not in rest
    assert "interrupted at step" in rest and "saving a checkpoint" in rest
    saved = Checkpoints(workdir / "checkpoints").all_steps()
    assert len(saved) == 1 and saved[0] >= 3, saved
    metrics = (workdir / "metrics.jsonl").read_text().splitlines()
    assert max(json.loads(line)["step"] for line in metrics) == saved[0]


def test_a_run_whose_checkpoint_holds_a_training_carry_loads_for_evaluation(finished_run, tmp_path):
    """State-carrying runs save a `carry` beside the weights; evaluation reads the weights only."""
    workdir, data_dir, _ = finished_run
    state, abstract, model_config = _fresh_state_and_abstract(tiny_config(data_dir), seed=0)
    saved, data_state, meta = Checkpoints(workdir / "checkpoints").restore_latest(abstract)
    copy = tmp_path / "stateful"
    copy.mkdir()
    shutil.copy(workdir / "config.json", copy / "config.json")
    with_carry = {**saved, "carry": {"episode_id": np.arange(2), "ssm": np.ones((2, 3, 4))}}
    checkpoints = Checkpoints(copy / "checkpoints")
    checkpoints.save(4, with_carry, data_state=data_state, meta=meta)
    checkpoints.close()
    run = load_run(copy)
    assert run.step == 4 and run.weights == "ema"
    loaded = nnx.state(run.model, nnx.Param)
    jax.tree.map(np.testing.assert_array_equal, loaded, saved["ema"])
