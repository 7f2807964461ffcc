"""A long rollout of a trained run: what `python -m lssvwm.rollout` does, as a function.

    record = run_rollout(load_run(DIR), RolloutOptions(frames=1000, output_dir=OUT))

The context is `context` frames of a dataset episode (1 = a single start frame). The frames
after it follow the episode's path (reflected at its ends, `lssvwm.evaluation.paths`), or a
given `poses`/`actions` array. Generation is `lssvwm.evaluation.streaming.stream_generate`
(prefill through the parallel pass, then one jitted call per unit, timed). Writes into
`output_dir`:

  rollout.json   frames, per_frame_seconds [N], cache_bytes (the carried state at the end),
                 peak_memory_bytes, model (mixer, variant), checkpoint_step, and beside them:
                 cache_bytes_after_prefill, store_bytes (spatial memory), compile/prefill
                 seconds, per-frame-time medians
                 near frames 10, 100, 1000, ..., the path, the reset policy and -- where ground
                 truth exists -- PSNR per frame against it and for copying the last context frame
  rollout.mp4|gif  generated frames beside the truth (grey where there is none)
  frames.npy       with `save_frames`: the generated frames, uint8 [N, H, W, 3] (exact, where
                   the video is lossy: e.g. to check that a recorded play-through replays)
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import resource
import time

import jax
import numpy as np

from lssvwm.common import video
from lssvwm.common.frames import model_range_to_uint8
from lssvwm.common.image_metrics import frame_metrics
from lssvwm.common.progress import FrameProgress
from lssvwm.evaluation import loading, paths
from lssvwm.evaluation.reset import NEVER_RESET, ResetPolicy, describe
from lssvwm.evaluation.streaming import stream_generate
from lssvwm.models import inputs
from lssvwm.nn.embed import ACTION_FIELDS


@dataclasses.dataclass(frozen=True)
class RolloutOptions:
    frames: int | None  # None: the length of the poses/actions array
    output_dir: str | pathlib.Path
    context: int = 16
    split: str | None = None  # None: the run's eval split
    episode: int = 0
    start: int = 0
    poses: np.ndarray | None = None
    actions: np.ndarray | None = None
    path_source: str = ""  # where poses/actions came from (for the record)
    reset_policy: ResetPolicy = NEVER_RESET
    seed: int = 0
    data_dir: str | None = None
    data_overrides: tuple[str, ...] = ()
    video_format: str = "auto"
    fps: float = 16.0
    scale: int = 4
    video_context_frames: int = 16  # context frames shown before the generated ones
    save_frames: bool = False  # also write frames.npy (module docstring)


def peak_memory_bytes() -> dict:
    """Peak resident memory of this process, and the device's peak where JAX reports it."""
    out = {"peak_memory_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        out["device_peak_bytes_in_use"] = int(stats["peak_bytes_in_use"])
    return out


def seconds_near(per_frame_seconds, frames=(10, 100, 1000, 10000), half_window: int = 10):
    """{f: median seconds of generated frames f - 9 .. f + 10 (1-based)} for f <= N."""
    seconds = np.asarray(per_frame_seconds)
    out = {}
    for frame in frames:
        if frame <= len(seconds):
            low, high = max(0, frame - half_window), min(len(seconds), frame + half_window)
            out[str(frame)] = float(np.median(seconds[low:high]))
    return out


def _conditioning(run, options: RolloutOptions, episode: dict):
    """(context index [C], actions [N, ...], truth index [N] or None, path description)."""
    mode = run.model_config.action_mode
    given = {"poses": options.poses, "actions": options.actions}
    given = {k: v for k, v in given.items() if v is not None}
    if len(given) > 1:
        raise ValueError("pass either --poses or --actions, not both")
    length = episode["frames"].shape[0]
    if options.context < 1:
        raise ValueError(
            f"--context must be >= 1 frame (1: a single start frame), got {options.context}"
        )
    if options.start < 0 or options.start + options.context > length:
        raise ValueError(
            f"a context of {options.context} frames from frame {options.start} does not fit "
            f"the episode ({length} frames)"
        )
    context_index = np.arange(options.start, options.start + options.context)
    if given:
        ((kind, array),) = given.items()
        wanted = "actions" if mode == "discrete" else "poses"
        if kind != wanted:
            raise ValueError(
                f"this model is conditioned on {mode!r} ({wanted}); --{kind} cannot drive it, "
                f"pass --{wanted}"
            )
        if options.frames is not None and options.frames != len(array):
            raise ValueError(
                f"--{kind} holds {len(array)} frames but --frames={options.frames}; they must "
                "agree (or leave --frames out)"
            )
        if kind == "actions" and array.max(initial=0) >= run.model_config.num_actions:
            raise ValueError(
                f"--actions: action {int(array.max())} is outside the model's "
                f"{run.model_config.num_actions} actions"
            )
        return context_index, array, None, f"{kind} from {options.path_source or 'array'}"
    if options.frames is None or options.frames < 1:
        raise ValueError("--frames must be >= 1 (or give --poses/--actions)")
    plan = paths.episode_path(
        episode,
        run.action_field,
        start=options.start,
        context=options.context,
        frames=options.frames,
        inverse_action=loading.inverse_action_table(run.config.data.dataset),
    )
    description = "episode" + (" (walked back and forth at its ends)" if plan.reflected else "")
    return plan.context_index, plan.actions, plan.target_index, description


def _frames_of(episode: dict, index) -> dict:
    """The episode's per-frame fields at `index` (intrinsics as they are)."""
    return {
        name: value if name == "intrinsics" else value[index] for name, value in episode.items()
    }


def _with_cameras(run, data, episode: dict, conditioning, truth_index) -> np.ndarray:
    """The actions of a model that needs geometry: the conditioning with the cameras of the
    frames to generate packed after it (`lssvwm.models.inputs`). Along an episode path the
    cameras are the episode's own; for given poses, maze3d's camera follows from the pose."""
    fields = {ACTION_FIELDS[run.model_config.action_mode]: np.asarray(conditioning)}
    fields["intrinsics"] = episode["intrinsics"]
    if truth_index is not None:
        fields["camera_to_world"] = episode["camera_to_world"][truth_index]
    elif data.dataset == "maze3d" and run.model_config.action_mode != "discrete":
        from lssvwm.data import maze_render

        eye_height = float(data.maze3d.eye_height)
        fields["camera_to_world"] = maze_render.camera_to_world(
            np.asarray(conditioning), eye_height
        )
    else:
        raise ValueError(
            f"the {run.model_config.mixer} model needs a camera per generated frame: given "
            f"--poses become cameras on maze3d only (dataset {data.dataset!r}, "
            f"{run.model_config.action_mode} conditioning)"
        )
    return inputs.model_actions(fields, run.model_config)


def run_rollout(run: loading.LoadedRun, options: RolloutOptions, *, log=print) -> dict:
    """Generates the rollout, writes rollout.json and the video; returns the record."""
    started = time.perf_counter()
    output_dir = pathlib.Path(options.output_dir)  # made once the options have passed
    data = loading.data_config(run, data_dir=options.data_dir, overrides=options.data_overrides)
    split = options.split or data.get("eval_split", "test")
    fields = tuple(
        dict.fromkeys(("frames", "actions", "position", *inputs.episode_fields(run.model_config)))
    )
    source, present = loading.open_episodes(data, split, fields)
    inputs.check_fields_present(run.model_config, present, f"split {split!r} of {data.dataset}")
    if not 0 <= options.episode < source.index.num_episodes:
        raise ValueError(
            f"--episode={options.episode} is out of range: split {split!r} has "
            f"{source.index.num_episodes} episodes"
        )
    from lssvwm.data import sources

    episode = sources.read_episode(source, options.episode)
    context_index, actions, truth_index, path_description = _conditioning(run, options, episode)
    frames = len(actions)
    unit = run.model_config.unit
    if len(context_index) % unit or frames % unit:
        raise ValueError(
            f"the context ({len(context_index)}) and --frames ({frames}) must be whole numbers "
            f"of the model's unit of {unit} frames"
        )

    context_fields = _frames_of(episode, context_index)
    context_frames = inputs.model_frames(context_fields, run.model_config)
    context_actions = inputs.model_actions(context_fields, run.model_config)
    if inputs.needs_geometry(run.model_config):
        actions = _with_cameras(run, data, episode, actions, truth_index)
    log(
        f"rollout: {run.model_config.mixer} step {run.step}, {len(context_index)} context frames "
        f"of {split} episode {options.episode}, {frames} frames along the {path_description}"
    )
    stream = stream_generate(
        run.sampler(),
        context_frames[None],
        context_actions[None],
        np.asarray(actions)[None],
        jax.random.PRNGKey(options.seed),
        reset_policy=options.reset_policy,
        progress=FrameProgress(frames, log=log),
    )
    generated = model_range_to_uint8(inputs.rgb_of(stream.frames[0]))  # [N, H, W, 3]

    record = {
        "frames": int(frames),
        "context_frames": int(len(context_index)),
        "per_frame_seconds": [float(s) for s in stream.per_frame_seconds],
        "cache_bytes": int(stream.cache_bytes),
        **peak_memory_bytes(),
        "model": run.describe(),
        "mixer": run.model_config.mixer,
        "checkpoint_step": run.step,
        "weights": run.weights,
        "sampler_steps": run.diffusion_config.sampler_steps,
        "cache_bytes_after_prefill": int(stream.cache_bytes_after_prefill),
        # the spatial-memory store's share of cache_bytes (None: the model has no store)
        "store_bytes": None if stream.cache.memory is None else int(stream.cache.memory.nbytes),
        "per_frame_seconds_near": seconds_near(stream.per_frame_seconds),
        "per_frame_seconds_median": float(np.median(stream.per_frame_seconds)),
        "compile_seconds": stream.compile_seconds,
        "prefill_seconds": stream.prefill_seconds,
        "path": path_description,
        "split": split,
        "episode": int(options.episode),
        "episode_id": int(source.index.episode_ids[options.episode]),
        "start": int(options.start),
        "reset_policy": describe(options.reset_policy),
        "resets_before_frames": stream.resets,
        "seed": int(options.seed),
        "workdir": str(run.workdir),
    }
    truth = None
    if truth_index is not None:
        truth = episode["frames"][truth_index]
        model_scores = frame_metrics(generated, truth)
        copy = np.broadcast_to(episode["frames"][context_index[-1]], truth.shape)
        copy_scores = frame_metrics(copy, truth)
        record.update(
            psnr=float(np.mean(model_scores["psnr"])),
            ssim=float(np.mean(model_scores["ssim"])),
            copy_last_frame_psnr=float(np.mean(copy_scores["psnr"])),
            psnr_by_frame=[round(float(x), 3) for x in model_scores["psnr"]],
            copy_last_frame_psnr_by_frame=[round(float(x), 3) for x in copy_scores["psnr"]],
        )

    shown = min(options.video_context_frames, len(context_index))
    movie_generated = np.concatenate([episode["frames"][context_index[-shown:]], generated])
    movie_truth = None
    if truth is not None:
        movie_truth = np.concatenate([episode["frames"][context_index[-shown:]], truth])
    movie = video.comparison_movie(
        movie_generated[None],
        None if movie_truth is None else movie_truth[None],
        shown,
        scale=options.scale,
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    record["video"] = str(
        video.write_video(
            movie, output_dir / "rollout", fps=options.fps, video_format=options.video_format
        )
    )
    if options.save_frames:
        np.save(output_dir / "frames.npy", generated)
        record["frames_file"] = str(output_dir / "frames.npy")
    record["wall_seconds"] = round(time.perf_counter() - started, 2)
    (output_dir / "rollout.json").write_text(json.dumps(record, indent=2) + "\n")
    near = ", ".join(
        f"frame {k}: {1e3 * v:.2f} ms" for k, v in record["per_frame_seconds_near"].items()
    )
    log(
        f"rollout.json: {frames} frames, cache {record['cache_bytes']:,} bytes "
        f"(after prefill {record['cache_bytes_after_prefill']:,}); per-frame {near}"
    )
    return record
