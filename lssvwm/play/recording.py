"""Saving a play-through so that `lssvwm.rollout` replays it.

    record = save_recording(session, "DIR/play_000")

writes, for the frames generated since the last restart:
  actions.json | poses.json   the path, as `lssvwm.rollout --actions/--poses` reads it
  frames.npy                  uint8 [N, H, W, 3], the generated frames
  play.mp4 | play.gif         the generated frames beside the maze's true view (grey elsewhere)
  play.json                   what was played (run, step, context, seed, resets, per-frame
                              seconds) and `replay`: the rollout command line that regenerates
                              the same frames (same seed), with --save_frames
"""

from __future__ import annotations

import json
import pathlib
import shlex

import numpy as np

from lssvwm.common import video
from lssvwm.play.controls import PlayerError


def replay_command(session, path_file: pathlib.Path, output_dir: pathlib.Path) -> list[str]:
    """The `lssvwm.rollout` argv that replays `session`'s path from `path_file`."""
    run, options = session.run, session.options
    argv = [
        "python",
        "-m",
        "lssvwm.rollout",
        f"--workdir={run.workdir}",
        f"--{session.controls.kind}={path_file}",
        f"--output_dir={output_dir}",
        f"--context={options.context}",
        f"--split={session.split}",
        f"--episode={options.episode}",
        f"--start={options.start}",
        f"--seed={options.seed}",
        f"--step={run.step}",
        f"--weights={run.weights}",
        f"--sampler_steps={run.diffusion_config.sampler_steps}",
        "--save_frames",
    ]
    if session.resets:
        frames = ",".join(str(f) for f in session.resets)
        argv.append(f"--reset=at:{frames}:{options.reset_scope}")
    if options.data_dir:
        argv.append(f"--data_dir={options.data_dir}")
    argv += [f"--data={item}" for item in options.data_overrides]
    return argv


def save_recording(
    session, directory: str | pathlib.Path, *, fps: float = 8.0, video_format: str = "auto"
) -> dict:
    """Writes the play-through since the last restart into `directory` (module docstring)."""
    if not session.frames:
        raise PlayerError("nothing to record yet: press a key to generate frames first")
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    kind = session.controls.kind
    path = session.path_array()
    path_file = directory / f"{kind}.json"
    path_file.write_text(json.dumps({kind: path.tolist()}) + "\n")
    frames_NHWC = np.stack(session.frames)
    np.save(directory / "frames.npy", frames_NHWC)

    context = session.context_frames_THWC[-min(8, len(session.context_frames_THWC)) :]
    generated = np.concatenate([context, frames_NHWC])
    truth = None
    if session.truths:
        truth = np.concatenate([context, np.stack(session.truths)])[None]
    movie = video.comparison_movie(generated[None], truth, len(context), scale=4)
    video_path = video.write_video(movie, directory / "play", fps=fps, video_format=video_format)

    run = session.run
    record = {
        "workdir": str(run.workdir),
        "checkpoint_step": run.step,
        "weights": run.weights,
        "model": run.describe(),
        "sampler_steps": run.diffusion_config.sampler_steps,
        "split": session.split,
        "episode": session.options.episode,
        "episode_id": session.episode_id,
        "start": session.options.start,
        "context_frames": session.options.context,
        "seed": session.options.seed,
        "frames": len(session.frames),
        "path_file": path_file.name,
        "resets_before_frames": list(session.resets),
        "reset_scope": session.options.reset_scope,
        "per_frame_seconds": [round(s, 6) for s in session.per_frame_seconds],
        "video": video_path.name,
        "replay": shlex.join(replay_command(session, path_file, directory / "replay")),
    }
    if session.poses:
        record["camera_poses"] = np.stack(session.poses).round(5).tolist()
    (directory / "play.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def next_recording_dir(root: str | pathlib.Path) -> pathlib.Path:
    """`root`/play_NNN, the first number not taken."""
    root = pathlib.Path(root)
    number = 0
    while (root / f"play_{number:03d}").exists():
        number += 1
    return root / f"play_{number:03d}"
