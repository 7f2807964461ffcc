r"""Rolls a trained world model out for N frames (absl app).

    python -m lssvwm.rollout --workdir=/tmp/qs --frames=1000 --output_dir=/tmp/qs/rollout
    python -m lssvwm.rollout --workdir=DIR --frames=500 --output_dir=OUT --context=1 \
        --episode=3 --reset=every:128
    python -m lssvwm.rollout --workdir=DIR --poses=path.npy --output_dir=OUT     # pose models
    python -m lssvwm.rollout --workdir=DIR --actions=path.json --output_dir=OUT  # discrete

Loads the newest checkpoint of DIR (EMA weights; `--step`, `--weights=params`), prefills
`--context` frames of an episode of the run's dataset (`--split`, `--episode`, `--start`;
`--context=1` is a single start frame) through the parallel pass, and generates `--frames`
frames one unit at a time, along the episode's path (walked back and forth where it ends) or
the given poses/actions. Writes OUT/rollout.json (per-frame seconds, cache bytes, peak memory,
model, checkpoint step; see `lssvwm.evaluation.rollouts`) and OUT/rollout.mp4 (or .gif): the
generated frames beside the ground truth; with `--save_frames` also OUT/frames.npy, the generated
frames exactly (a recorded `lssvwm.play` session replays to the same ones).
"""

from __future__ import annotations

import os
import warnings

from absl import app, flags, logging

from lssvwm import cli
from lssvwm.evaluation import loading, paths, reset
from lssvwm.evaluation.rollouts import RolloutOptions, run_rollout

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory written by lssvwm.train.")
_FRAMES = flags.DEFINE_integer(
    "frames", None, "Frames to generate (default: the path file's).", lower_bound=1
)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where rollout.json and the video go.")
_CONTEXT = flags.DEFINE_integer(
    "context", 16, "Context frames from the episode (1: one frame).", lower_bound=1
)
_SPLIT = flags.DEFINE_string("split", None, "Dataset split (default: the run's eval split).")
_EPISODE = flags.DEFINE_integer("episode", 0, "Episode of the split (0-based).", lower_bound=0)
_START = flags.DEFINE_integer("start", 0, "First context frame within the episode.", lower_bound=0)
_POSES = flags.DEFINE_string("poses", None, "Poses [N, 3] (.npy/.npz/.json) to drive along.")
_ACTIONS = flags.DEFINE_string("actions", None, "Discrete actions [N] (.npy/.npz/.json).")
_RESET = flags.DEFINE_string(
    "reset",
    "never",
    "Reset policy, as evaluate's --reset: 'never', 'every:N' (all state), 'every:N:ssm' "
    "(long-term memory only: SSM state or spatial store) or 'at:F1,F2[:ssm]' (before those "
    "generated frames).",
)
# The first spelling, kept so that older scripts still run; --reset is the one to use.
_RESET_EVERY = flags.DEFINE_string("reset_every", None, "Old spelling of --reset.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).", lower_bound=0)
_WEIGHTS = flags.DEFINE_enum("weights", "ema", loading.WEIGHTS, "EMA or raw parameters.")
_SAMPLER_STEPS = flags.DEFINE_integer(
    "sampler_steps", None, "DDIM steps (default: config's).", lower_bound=1
)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Datasets directory (default: the run's).")
_DATA = flags.DEFINE_multi_string("data", [], "Data config override KEY=VALUE (repeatable).")
_VIDEO_FORMAT = flags.DEFINE_enum("video_format", "auto", ("auto", "gif", "mp4"), "Video type.")
_FPS = flags.DEFINE_float("fps", 16.0, "Video frames per second.")
_SAVE_FRAMES = flags.DEFINE_bool(
    "save_frames", False, "Also write OUT/frames.npy: the generated frames, uint8 [N, H, W, 3]."
)


def _check_path_file(path: str) -> None:
    if path and not os.path.isfile(path):
        raise ValueError(f"{path} is not a file")


# Checked when the flags are parsed: a bad value is one line before anything loads or compiles.
flags.register_validator("fps", lambda fps: fps > 0, message="--fps must be > 0")
cli.register_check("reset", reset.reset_policy_from_flag)
cli.register_check("reset_every", reset.reset_policy_from_flag)
cli.register_check("data", loading.parse_data_overrides)
cli.register_check("data_dir", lambda path: cli.check_can_write(path, directory=True))
cli.register_check("poses", _check_path_file)
cli.register_check("actions", _check_path_file)
cli.register_check("output_dir", lambda path: cli.check_can_write(path, directory=True))
flags.register_multi_flags_validator(
    ["poses", "actions"],
    lambda given: not (given["poses"] and given["actions"]),
    message="pass either --poses or --actions, not both",
)
flags.register_validator(
    "reset_every",
    lambda value: value is None or not flags.FLAGS["reset"].present,
    message="pass --reset only (--reset_every is its old spelling), not both",
)


def main(argv):
    loading.quiet_library_logging()
    # orbax warns on every restore that it reads the sharding from the checkpoint: no news
    warnings.filterwarnings("ignore", message="Sharding info not provided when restoring")
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _WORKDIR.value is None or _OUTPUT_DIR.value is None:
        raise app.UsageError("--workdir and --output_dir are required")
    if _FRAMES.value is None and not (_POSES.value or _ACTIONS.value):
        raise app.UsageError("--frames is required (or --poses / --actions, whose length it is)")
    run = loading.load_run(
        _WORKDIR.value,
        step=_STEP.value,
        weights=_WEIGHTS.value,
        sampler_steps=_SAMPLER_STEPS.value,
    )
    poses = actions = None
    path_source = ""
    if _POSES.value:
        poses, path_source = paths.load_path_file(_POSES.value, "poses"), _POSES.value
    if _ACTIONS.value:
        actions = paths.load_path_file(
            _ACTIONS.value, "actions", num_actions=run.model_config.num_actions or None
        )
        path_source = _ACTIONS.value
    options = RolloutOptions(
        frames=_FRAMES.value,
        output_dir=_OUTPUT_DIR.value,
        context=_CONTEXT.value,
        split=_SPLIT.value,
        episode=_EPISODE.value,
        start=_START.value,
        poses=poses,
        actions=actions,
        path_source=path_source,
        reset_policy=reset.reset_policy_from_flag(
            _RESET.value if _RESET_EVERY.value is None else _RESET_EVERY.value
        ),
        seed=_SEED.value,
        data_dir=_DATA_DIR.value,
        data_overrides=tuple(_DATA.value),
        video_format=_VIDEO_FORMAT.value,
        fps=_FPS.value,
        save_frames=_SAVE_FRAMES.value,
    )
    run_rollout(run, options, log=logging.info)


if __name__ == "__main__":
    cli.run(main)
