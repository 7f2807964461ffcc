r"""Scores a trained world model on the retrieval or reasoning task (absl app).

    python -m lssvwm.evaluate --workdir=/tmp/qs --task=retrieval --output=/tmp/qs/retrieval.json
    python -m lssvwm.evaluate --workdir=DIR --task=reasoning --context=192 --horizon=64 \
        --num_episodes=32 --batch_size=8 --seed=0 --output=OUT.json
    python -m lssvwm.evaluate --workdir=DIR --task=retrieval --history=blind --output=OUT.json
    python -m lssvwm.evaluate --compare DIR1 DIR2 OUT.json ... --output=compare.md

Retrieval: a context of N frames, then the path walked backwards (ground truth: the reversed
context). Reasoning: a context, then the episode's next frames through places seen before
(`lssvwm.data.eval_tasks`). Over `--num_episodes` episodes (default 32, the least for the
bootstrap intervals; a split with fewer, as the quickstart's 8 test episodes, is evaluated whole
with a warning; fewer on request is allowed for smoke runs and noted in the JSON) of the run's
dataset, in batches, seeded. Writes OUT.json (task, context, horizon, psnr, ssim,
psnr_by_distance, num_episodes, checkpoint_step, and more: `lssvwm.evaluation.report`),
OUT.png (PSNR by frames since the view was last seen, and by frame, beside copying the last
frame) and OUT_best_worst.gif. `--data=maze3d.test_episodes=32` evaluates on more held-out
episodes of the same generator than the run's dataset has (built on first use).

`--history` says what each generated frame sees of the ones before it: `generated` (the
rollout), `truth` (teacher forcing), `blind` (pure noise: the model must recall the views
from the context alone, in its attention window, its SSM state or its spatial store -- memory
without drift) or `oracle_depth` (RGB-D models: the rollout with the true depth channel fed
back, so a spatial memory is written with exact geometry).

`--compare` takes result JSONs or directories holding them and writes one markdown table and
one plot (`lssvwm.evaluation.compare`).
"""

from __future__ import annotations

import pathlib
import warnings

from absl import app, flags, logging

from lssvwm import cli
from lssvwm.evaluation import compare, loading, report, reset, statistics, tasks
from lssvwm.evaluation.streaming import HISTORIES

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory written by lssvwm.train.")
_TASK = flags.DEFINE_enum("task", "retrieval", ("retrieval", "reasoning"), "Which task.")
_CONTEXT = flags.DEFINE_integer(
    "context", None, "Context frames N (default: per task/data).", lower_bound=1
)
_HORIZON = flags.DEFINE_integer(
    "horizon", None, "Generated frames M (default: per task/data).", lower_bound=1
)
_OUTPUT = flags.DEFINE_string(
    "output", None, "Result JSON (default: WORKDIR/evaluation/TASK.json); with --compare: .md"
)
_NUM_EPISODES = flags.DEFINE_integer(
    "num_episodes",
    None,
    f"Episodes (default: {tasks.MIN_EPISODES_FOR_CI}, or all the split has when it has fewer, "
    "with a warning; a number the split cannot give is an error).",
    lower_bound=1,
)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Episodes generated together.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Sampling and bootstrap seed.")
_SPLIT = flags.DEFINE_string("split", None, "Split (default: test / reasoning per task).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).", lower_bound=0)
_WEIGHTS = flags.DEFINE_enum("weights", "ema", loading.WEIGHTS, "EMA or raw parameters.")
_SAMPLER_STEPS = flags.DEFINE_integer(
    "sampler_steps", None, "DDIM steps (default: config's).", lower_bound=1
)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Datasets directory (default: the run's).")
_DATA = flags.DEFINE_multi_string("data", [], "Data config override KEY=VALUE (repeatable).")
_EDGES = flags.DEFINE_list(
    "distance_edges",
    None,
    "Upper bin edges of frames since last seen, e.g. 4,32: 1-4, 5-32, >32 (default: k, the "
    "training length, then doublings).",
)
_RESAMPLES = flags.DEFINE_integer(
    "bootstrap_resamples", statistics.DEFAULT_RESAMPLES, "Bootstrap resamples.", lower_bound=1
)
_VIDEO_FORMAT = flags.DEFINE_enum("video_format", "gif", ("auto", "gif", "mp4"), "Video type.")
_RESET = flags.DEFINE_string(
    "reset",
    "never",
    "Rollout reset policy: 'never', 'every:N' (all state), 'every:N:ssm' (long-term memory only: "
    "SSM state or spatial store) or "
    "'at:F1,F2[:ssm]' (before those generated frames; at:0:ssm forgets the context's SSM state).",
)
_HISTORY = flags.DEFINE_enum(
    "history",
    "generated",
    HISTORIES,
    "What later frames see of earlier ones: the generated frames (a rollout), the ground truth "
    "(teacher forcing), nothing but noise ('blind': a memory probe without drift), or the "
    "generated frames with the true depth ('oracle_depth', RGB-D models).",
)
_COMPARE = flags.DEFINE_bool("compare", False, "Compare result files/dirs given as arguments.")


def _check_distance_edges(edges) -> None:
    statistics.distance_bins([int(e) for e in edges])


# Checked when the flags are parsed: a bad value is one line before anything loads or compiles.
cli.register_check("distance_edges", _check_distance_edges)
cli.register_check("reset", reset.reset_policy_from_flag)
cli.register_check("data", loading.parse_data_overrides)
cli.register_check("data_dir", lambda path: cli.check_can_write(path, directory=True))
cli.register_check("output", cli.check_can_write)


def main(argv):
    loading.quiet_library_logging()
    # orbax warns on every restore that it reads the sharding from the checkpoint: no news
    warnings.filterwarnings("ignore", message="Sharding info not provided when restoring")
    if _COMPARE.value:
        if len(argv) < 2:
            raise app.UsageError("--compare needs result JSONs or directories as arguments")
        if _OUTPUT.value is None:
            raise app.UsageError("--compare needs --output=FILE.md")
        written = compare.write_comparison(argv[1:], _OUTPUT.value)
        logging.info("comparison: %s and %s", written["table"], written["plot"])
        print(written["table"].read_text())
        return
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]} (did you mean --compare?)")
    if _WORKDIR.value is None:
        raise app.UsageError("--workdir is required")
    run = loading.load_run(
        _WORKDIR.value, step=_STEP.value, weights=_WEIGHTS.value, sampler_steps=_SAMPLER_STEPS.value
    )
    options = tasks.TaskOptions(
        task=_TASK.value,
        context=_CONTEXT.value,
        horizon=_HORIZON.value,
        split=_SPLIT.value,
        num_episodes=_NUM_EPISODES.value,
        batch_size=_BATCH_SIZE.value,
        seed=_SEED.value,
        data_dir=_DATA_DIR.value,
        data_overrides=tuple(_DATA.value),
        reset=_RESET.value,
        history=_HISTORY.value,
    )
    if options.num_episodes is not None and options.num_episodes < tasks.MIN_EPISODES_FOR_CI:
        logging.warning(
            "%d episodes: bootstrap intervals need >= %d to mean much (smoke run?)",
            options.num_episodes,
            tasks.MIN_EPISODES_FOR_CI,
        )
    scores = tasks.score_task(run, options, log=logging.info)
    edges = None if _EDGES.value is None else [int(e) for e in _EDGES.value]
    summary = report.summarize(scores, run, distance_edges=edges, resamples=_RESAMPLES.value)
    output = _OUTPUT.value or pathlib.Path(_WORKDIR.value) / "evaluation" / f"{_TASK.value}.json"
    written = report.write_report(summary, scores, output, video_format=_VIDEO_FORMAT.value)
    logging.info(
        "%s: PSNR %.2f dB (copy last frame %.2f), SSIM %.3f over %d episodes -> %s",
        summary["task"],
        summary["psnr"],
        summary["copy_last_frame_psnr"],
        summary["ssim"],
        summary["num_episodes"],
        written["json"],
    )
    for entry in summary["psnr_by_distance"]:
        if entry["num_frames"]:
            logging.info(
                "  %s: PSNR %.2f (copy %.2f), %d frames",
                "never seen" if entry["never_seen"] else f"seen {entry['label']} frames ago",
                entry["psnr"],
                entry["copy_last_frame_psnr"],
                entry["num_frames"],
            )


if __name__ == "__main__":
    cli.run(main)
