"""Every command line rejects a zero, negative or out-of-range flag value in one line with exit
status 2 -- never replaced by a default -- before anything loads or compiles; a workdir with
nothing to load is one line too. Run in this process (tests/cli/cli_harness.py); one test runs
a real subprocess for the exit status and the absence of a traceback."""

import subprocess
import sys

import pytest

from lssvwm import cli
from lssvwm.config_loading import load_config
from lssvwm.evaluation import tasks
from tests.cli.cli_harness import error_lines, run_main

TINY = "configs/quickstart.py:tiny"


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.delenv(cli.VERBOSE_ENV, raising=False)


@pytest.fixture
def no_checkpoints(tmp_path):
    """A run directory with a config.json and no checkpoint."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text(load_config(TINY).to_json_best_effort(indent=2))
    return workdir


def one_line(module, *args, monkeypatch, capsys) -> str:
    status, stderr = run_main(module, *args, monkeypatch=monkeypatch, capsys=capsys)
    lines = error_lines(stderr)
    assert status == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


EVALUATE = [
    ("--context=0", "flag --context=0: 0 is not a positive integer"),
    ("--horizon=0", "flag --horizon=0: 0 is not a positive integer"),
    ("--horizon=-4", "flag --horizon=-4: -4 is not a positive integer"),
    ("--num_episodes=0", "flag --num_episodes=0: 0 is not a positive integer"),
    ("--batch_size=0", "flag --batch_size=0: 0 is not a positive integer"),
    ("--step=-1", "flag --step=-1: -1 is not a non-negative integer"),
    ("--sampler_steps=0", "flag --sampler_steps=0: 0 is not a positive integer"),
    ("--bootstrap_resamples=0", "flag --bootstrap_resamples=0: 0 is not a positive integer"),
    ("--distance_edges=32,4", "distance edges must be increasing integers >= 1"),
    ("--distance_edges=four", "invalid literal for int()"),
    ("--reset=sometimes", "unknown reset policy 'sometimes'"),
    ("--reset=every:-3", "reset interval must be >= 1 frame, got -3"),
    ("--data=maze3d.seed", "data override 'maze3d.seed' is not KEY=VALUE"),
    ("--output=/dev/null/out.json", "/dev/null is not a directory"),
    ("--data_dir=/dev/null/tfds", "/dev/null/tfds cannot be made: /dev/null is not a directory"),
    ("--task=retreival", "flag --task=retreival: value should be one of"),
]


@pytest.mark.parametrize("flag, message", EVALUATE, ids=[f for f, _ in EVALUATE])
def test_evaluate_rejects_bad_flag_values(monkeypatch, capsys, no_checkpoints, flag, message):
    line = one_line(
        "lssvwm.evaluate",
        f"--workdir={no_checkpoints}",
        flag,
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert message in line, line


ROLLOUT = [
    ("--frames=0", "flag --frames=0: 0 is not a positive integer"),
    ("--context=0", "flag --context=0: 0 is not a positive integer"),
    ("--episode=-1", "flag --episode=-1: -1 is not a non-negative integer"),
    ("--start=-1", "flag --start=-1: -1 is not a non-negative integer"),
    ("--step=-2", "flag --step=-2: -2 is not a non-negative integer"),
    ("--sampler_steps=0", "flag --sampler_steps=0: 0 is not a positive integer"),
    ("--fps=0", "--fps must be > 0"),
    ("--reset=often", "unknown reset policy 'often'"),
    ("--reset_every=often", "unknown reset policy 'often'"),
    ("--reset=every:4 --reset_every=8", "pass --reset only (--reset_every is its old spelling)"),
    ("--poses=/nonexistent/path.npy", "/nonexistent/path.npy is not a file"),
    ("--output_dir=/dev/null/rollout", "/dev/null is not a directory"),
    ("--data_dir=/dev/null/tfds", "/dev/null/tfds cannot be made: /dev/null is not a directory"),
]


@pytest.mark.parametrize("flag, message", ROLLOUT, ids=[f for f, _ in ROLLOUT])
def test_rollout_rejects_bad_flag_values(
    monkeypatch, capsys, tmp_path, no_checkpoints, flag, message
):
    args = [f"--workdir={no_checkpoints}", f"--output_dir={tmp_path / 'out'}", "--frames=8"]
    line = one_line("lssvwm.rollout", *args, *flag.split(), monkeypatch=monkeypatch, capsys=capsys)
    assert message in line, line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", ["--reset=every:4", "--reset=every:4:ssm", "--reset_every=4"])
def test_rollout_takes_the_reset_spelling_of_evaluate(
    monkeypatch, capsys, tmp_path, no_checkpoints, flag
):
    # The flags parse (the README's spelling, and the old one): the error is the missing checkpoint.
    args = [f"--workdir={no_checkpoints}", f"--output_dir={tmp_path / 'out'}", "--frames=8", flag]
    line = one_line("lssvwm.rollout", *args, monkeypatch=monkeypatch, capsys=capsys)
    assert line.endswith("checkpoints does not exist: the run has no checkpoint yet"), line


def test_rollout_needs_frames_or_a_path_and_not_both_paths(monkeypatch, capsys, tmp_path):
    base = [f"--workdir={tmp_path}", f"--output_dir={tmp_path / 'out'}"]
    line = one_line("lssvwm.rollout", *base, monkeypatch=monkeypatch, capsys=capsys)
    assert line == "error: --frames is required (or --poses / --actions, whose length it is)"
    (tmp_path / "p.npy").write_bytes(b"")
    both = [f"--poses={tmp_path / 'p.npy'}", f"--actions={tmp_path / 'p.npy'}"]
    line = one_line("lssvwm.rollout", *base, *both, monkeypatch=monkeypatch, capsys=capsys)
    assert "pass either --poses or --actions, not both" in line


@pytest.mark.parametrize("module", ["lssvwm.evaluate", "lssvwm.rollout"])
def test_a_workdir_with_nothing_to_load_is_one_line(
    monkeypatch, capsys, tmp_path, no_checkpoints, module
):
    extra = ["--frames=8", f"--output_dir={tmp_path / 'out'}"] if module == "lssvwm.rollout" else []
    line = one_line(
        module, f"--workdir={tmp_path / 'missing'}", *extra, monkeypatch=monkeypatch, capsys=capsys
    )
    assert "missing/config.json does not exist: --workdir must be a run directory" in line
    line = one_line(
        module, f"--workdir={no_checkpoints}", *extra, monkeypatch=monkeypatch, capsys=capsys
    )
    assert line.endswith("checkpoints does not exist: the run has no checkpoint yet"), line


PREVIEW = [
    ("--frames=0", "flag --frames=0: 0 is not a positive integer"),
    ("--stride=0", "flag --stride=0: 0 is not a positive integer"),
    ("--episode=-1", "flag --episode=-1: -1 is not a non-negative integer"),
    ("--data.maze3d.test_episods=3", "unknown config key maze3d.test_episods (did you mean "),
    ("--data.data_dir=/dev/null/tfds", "data.data_dir /dev/null/tfds cannot be made: /dev/null"),
]


@pytest.mark.parametrize("flag, message", PREVIEW, ids=[f for f, _ in PREVIEW])
def test_preview_rejects_bad_flag_values(monkeypatch, capsys, tmp_path, flag, message):
    args = [f"--output_dir={tmp_path / 'out'}", flag]
    line = one_line("lssvwm.data.preview", *args, monkeypatch=monkeypatch, capsys=capsys)
    assert message in line, line


def test_build_rejects_negative_workers_and_unknown_keys(monkeypatch, capsys):
    line = one_line("lssvwm.data.build", "--num_workers=-1", monkeypatch=monkeypatch, capsys=capsys)
    assert "flag --num_workers=-1: -1 is not a non-negative integer" in line
    line = one_line(
        "lssvwm.data.build",
        "--data.maze3d.traIn_episodes=2",
        monkeypatch=monkeypatch,
        capsys=capsys,
    )
    assert "unknown config key maze3d.traIn_episodes (did you mean maze3d.train_episodes?)" in line


def test_train_config_mistakes_are_one_line(monkeypatch, capsys, tmp_path):
    workdir = tmp_path / "run"
    for flag, message in [
        ("--config.model.widht=3", f"{TINY}: unknown config key model.widht (did you mean"),
        ("--config.training.steps=-5", f"{TINY}: training.steps must be >= 1, got -5"),
        ("--config.training.window_length=64", f"{TINY}: training.window_length (64) is longer"),
        ("--config.data.data_dir=/dev/null/tfds", "data.data_dir /dev/null/tfds cannot be made"),
    ]:
        args = [f"--config={TINY}", f"--workdir={workdir}", flag]
        line = one_line("lssvwm.train", *args, monkeypatch=monkeypatch, capsys=capsys)
        assert message in line, line
    assert not workdir.exists()
    args = [f"--config={TINY}", "--workdir=/dev/null"]
    line = one_line("lssvwm.train", *args, monkeypatch=monkeypatch, capsys=capsys)
    assert line == "error: --workdir /dev/null exists and is not a directory"


def test_score_task_takes_zero_as_a_mistake_not_as_the_default():
    for name in ("context", "horizon"):
        options = tasks.TaskOptions(task="retrieval", num_episodes=1, **{name: 0})
        with pytest.raises(ValueError, match=f"--{name} must be >= 1 frame, got 0"):
            tasks.score_task(None, options)  # before the run is looked at


def test_the_real_exit_status_and_no_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lssvwm.train",
            f"--config={TINY}",
            f"--workdir={tmp_path / 'run'}",
            "--config.model.widht=3",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"error: {TINY}: unknown config key model.widht (did you mean model.width?)\n"
    )
    assert not (tmp_path / "run").exists()
