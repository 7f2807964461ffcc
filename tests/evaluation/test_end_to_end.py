"""Rollout and evaluation end to end on a tiny run directory: output contracts, retrieval
ground truth, and (slow) both command lines."""

import dataclasses
import json
import logging
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from lssvwm.data import sources
from lssvwm.evaluation import compare, loading, report, tasks
from lssvwm.evaluation.rollouts import RolloutOptions, run_rollout
from tests.evaluation.conftest import TINY_STEP, random_model

REPO = pathlib.Path(__file__).resolve().parents[2]
ROLLOUT_CONTRACT = ("frames", "per_frame_seconds", "cache_bytes", "peak_memory_bytes", "model")
EVALUATE_CONTRACT = (
    "task",
    "context",
    "horizon",
    "psnr",
    "ssim",
    "psnr_by_distance",
    "num_episodes",
    "checkpoint_step",
)


@pytest.fixture(scope="module")
def run(tiny_loaded_run):
    return tiny_loaded_run


def test_load_run_restores_the_checkpoint(run, tiny_run):
    assert run.step == TINY_STEP and run.weights == "ema"
    assert run.model_config.mixer == "lssvwm" and run.action_field == "actions"
    assert run.diffusion_config.sampler_steps == 2
    with pytest.raises(ValueError, match="no checkpoint of step 7"):
        loading.load_run(tiny_run[0], step=7)
    with pytest.raises(FileNotFoundError, match="config.json"):
        loading.load_run(tiny_run[0] / "checkpoints")


@pytest.mark.parametrize("weights", ["ema", "params"])
def test_load_run_gives_the_saved_weights(weights, tiny_run):
    """The restored model's variables are those the checkpoint was saved from (the tiny run's
    random model; its EMA equals its parameters at step 0), with the same graph."""
    loaded = loading.load_run(tiny_run[0], weights=weights)
    saved = random_model(loaded.model_config, seed=1)
    assert nnx.graphdef(loaded.model) == nnx.graphdef(saved)
    got, want = nnx.state(loaded.model), nnx.state(saved)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_rollout_record_and_flat_cache(run, tmp_path):
    records = []
    for frames in (8, 32):
        options = RolloutOptions(
            frames=frames, output_dir=tmp_path / str(frames), context=24, video_format="gif"
        )
        records.append(run_rollout(run, options, log=lambda *_: None))
        written = json.loads((tmp_path / str(frames) / "rollout.json").read_text())
        assert written == records[-1]
        assert set(ROLLOUT_CONTRACT) <= set(written)
        assert written["frames"] == len(written["per_frame_seconds"]) == frames
        assert written["checkpoint_step"] == TINY_STEP and written["model"]["mixer"] == "lssvwm"
        assert pathlib.Path(written["video"]).stat().st_size > 0
        assert written["peak_memory_bytes"] > 0
    short, long = records
    # The tiny episodes have 64 frames: 24 + 32 stay inside; the truth exists.
    assert long["cache_bytes"] == short["cache_bytes"] == long["cache_bytes_after_prefill"]
    assert len(long["psnr_by_frame"]) == 32 and np.isfinite(long["copy_last_frame_psnr"])


def test_rollout_past_the_episode_walks_back_and_takes_path_files(run, tmp_path):
    options = RolloutOptions(
        frames=70, output_dir=tmp_path / "long", context=24, video_format="gif"
    )
    record = run_rollout(run, options, log=lambda *_: None)
    assert "walked back" in record["path"] and len(record["psnr_by_frame"]) == 70
    actions = np.full(6, 1, np.int32)
    record = run_rollout(
        run,
        RolloutOptions(
            frames=None,
            output_dir=tmp_path / "file",
            context=24,
            actions=actions,
            video_format="gif",
        ),
        log=lambda *_: None,
    )
    assert record["frames"] == 6 and "psnr" not in record  # no ground truth for a free path
    with pytest.raises(ValueError, match="--poses cannot drive it"):
        run_rollout(
            run,
            RolloutOptions(frames=6, output_dir=tmp_path, poses=np.zeros((6, 3), np.float32)),
        )
    with pytest.raises(ValueError, match="holds 6 frames but --frames=5"):
        run_rollout(run, RolloutOptions(frames=5, output_dir=tmp_path, actions=actions))


# Batch size 1 and a context of 24 frames, as the rollouts above: the compiled prefill and
# unit are shared (compiling dominates these tests).
@pytest.fixture(scope="module")
def retrieval(run):
    options = tasks.TaskOptions(
        task="retrieval", context=24, horizon=16, num_episodes=3, batch_size=1
    )
    return tasks.score_task(run, options, log=lambda *_: None)


def test_retrieval_truth_is_the_reversed_context(retrieval, tiny_run):
    _, config = tiny_run
    data = config.data
    source = sources.open_split(data, "test", fields=("frames",))
    for e in range(3):
        frames = sources.read_episode(source, e)["frames"]
        # Generated frame N + j is scored against context frame N - 2 - j.
        np.testing.assert_array_equal(retrieval.truth[e], frames[:24][::-1][1:17])
        np.testing.assert_array_equal(retrieval.context_tail[e], frames[16:24])
    assert retrieval.generated.shape == retrieval.truth.shape == (3, 16, 16, 16, 3)
    # The copied source frame shows the view: it was seen at most 2j + 2 frames ago.
    assert np.all((retrieval.distance >= 1) & (retrieval.distance <= 2 * np.arange(16) + 2))


@pytest.mark.slow
def test_batching_pads_and_drops(run, retrieval):
    alone = tasks.score_task(
        run,
        tasks.TaskOptions(task="retrieval", context=24, horizon=16, num_episodes=3, batch_size=2),
        log=lambda *_: None,
    )
    np.testing.assert_array_equal(alone.truth, retrieval.truth)
    np.testing.assert_array_equal(alone.episode_ids, retrieval.episode_ids)
    np.testing.assert_array_equal(alone.copy_psnr, retrieval.copy_psnr)


def test_report_files_and_contract(run, retrieval, tmp_path):
    summary = report.summarize(retrieval, run, resamples=200)
    written = report.write_report(summary, retrieval, tmp_path / "retrieval.json")
    result = json.loads(written["json"].read_text())
    assert set(EVALUATE_CONTRACT) <= set(result)
    assert result["task"] == "retrieval" and result["checkpoint_step"] == TINY_STEP
    assert (result["context"], result["horizon"], result["num_episodes"]) == (24, 16, 3)
    assert result["psnr"] == pytest.approx(float(retrieval.psnr.mean()), rel=1e-6)
    assert result["copy_last_frame_psnr"] == pytest.approx(float(retrieval.copy_psnr.mean()))
    bins = result["psnr_by_distance"]
    assert sum(b["num_frames"] for b in bins) == 3 * 16
    # Edges: k = 4, the training length 8, then doublings below the largest distance (32).
    assert [b["label"] for b in bins] == ["1-4", "5-8", "9-16", ">16", "never seen"]
    for entry in bins:
        if entry["num_frames"]:
            low, high = entry["psnr_ci"]
            assert low <= entry["psnr"] <= high
    assert "skipped" in result["lpips"] and "skipped" in result["fvd"]
    assert result["reset"] == "never" and result["history"] == "generated"
    assert "note" in result  # fewer than 32 episodes
    assert written["plot"].stat().st_size > 0 and written["video"].stat().st_size > 0

    reasoning = tasks.score_task(
        run, tasks.TaskOptions(task="reasoning", num_episodes=2, batch_size=1), log=print
    )
    assert (reasoning.context, reasoning.horizon) == (32, 16)  # the data's reasoning lengths
    reasoning_summary = report.summarize(reasoning, run, resamples=200)
    report.write_report(reasoning_summary, reasoning, tmp_path / "reasoning.json")
    table = compare.write_comparison([str(tmp_path)], tmp_path / "compare.md")
    text = table["table"].read_text()
    assert (
        text.count("| run | mixer |") == 1 and "| retrieval |" in text and "| reasoning |" in text
    )
    assert table["plot"].stat().st_size > 0


def test_compare_names_the_reset_policy_and_shows_bin_intervals():
    result = {"workdir": "/runs/maze", "reset": "every 32 frames (SSM state only)"}
    assert compare.run_name(pathlib.Path("x/y.json"), result) == (
        "maze, reset every 32 frames (SSM state only)"
    )
    assert compare.run_name(pathlib.Path("x/y.json"), {"reset": "never"}) == "x"
    blind = {"workdir": "/runs/maze", "reset": "before generated frame 0", "history": "blind"}
    assert compare.run_name(pathlib.Path("x/y.json"), blind) == (
        "maze, reset before generated frame 0, blind history"
    )
    entry = {"psnr": 12.345, "psnr_ci": [11.0, 13.5], "copy_last_frame_psnr": 10.0}
    assert compare._bin_cell(entry) == "12.35 (11.00–13.50) [10.00]"


def test_the_default_evaluates_the_episodes_there_are_and_too_many_is_an_error(
    run, retrieval, caplog
):
    # The default (32) fits any run: the split's 3 episodes, with a warning, as if asked for 3.
    default = tasks.TaskOptions(task="retrieval", context=24, horizon=16, batch_size=1)
    with caplog.at_level(logging.WARNING):
        scores = tasks.score_task(run, default, log=lambda *_: None)
    assert "split 'test' has 3 episodes: evaluating all of them" in caplog.text
    np.testing.assert_array_equal(scores.episode_ids, retrieval.episode_ids)
    np.testing.assert_array_equal(scores.copy_psnr, retrieval.copy_psnr)
    # A number asked for explicitly is never quietly cut.
    asked = dataclasses.replace(default, num_episodes=32)
    with pytest.raises(ValueError, match="has 3 episodes, fewer than --num_episodes=32"):
        tasks.score_task(run, asked, log=lambda *_: None)


@pytest.mark.slow
def test_command_lines(tiny_run, tmp_path):
    workdir, _ = tiny_run

    def cli(*args):
        result = subprocess.run(
            [sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, result.stderr[-4000:]
        return result

    cli(
        "lssvwm.rollout",
        f"--workdir={workdir}",
        "--frames=12",
        "--context=4",
        f"--output_dir={tmp_path / 'rollout'}",
    )
    record = json.loads((tmp_path / "rollout" / "rollout.json").read_text())
    assert set(ROLLOUT_CONTRACT) <= set(record) and record["frames"] == 12
    for task in ("retrieval", "reasoning"):
        cli(
            "lssvwm.evaluate",
            f"--workdir={workdir}",
            f"--task={task}",
            "--num_episodes=2",
            "--batch_size=2",
            "--context=16",
            "--horizon=8",
            f"--output={tmp_path / task}.json",
        )
        result = json.loads((tmp_path / f"{task}.json").read_text())
        assert set(EVALUATE_CONTRACT) <= set(result) and result["task"] == task
        assert (tmp_path / f"{task}.png").exists()
    out = cli(
        "lssvwm.evaluate",
        "--compare",
        str(tmp_path / "retrieval.json"),
        str(tmp_path / "reasoning.json"),
        f"--output={tmp_path / 'cmp.md'}",
    )
    assert "| retrieval |" in out.stdout and (tmp_path / "cmp.png").exists()
