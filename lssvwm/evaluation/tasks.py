"""Scoring a run on the retrieval or reasoning task over a set of evaluation episodes.

    options = TaskOptions(task="retrieval")  # num_episodes: 32, or all there are if fewer
    scores  = score_task(run, options)       # per episode and frame: PSNR, SSIM, distance, ...
    summary = summarize(scores, run)         # the evaluate JSON (lssvwm.evaluation.report)

Episodes come from the run's dataset (`lssvwm.data.eval_tasks.iterate_tasks`; the `test` split
for retrieval, `reasoning` for reasoning), in order, in batches of `batch_size` (the last batch
is padded with copies of its last episode, whose results are dropped, so one compiled unit
serves every batch). Each batch: the context through the parallel prefill, then the horizon
unit by unit with the target poses/actions (`stream_generate`; `history` chooses whether later
frames see the generated ones -- a rollout --, the ground truth, or nothing); batch i samples with
`fold_in(PRNGKey(seed), i)`, so results depend on (seed, batch_size).

Per generated frame: PSNR and SSIM against the task's ground truth, the same for copying the
last context frame, and the frames since the view was last seen (`visibility`; from depth and
poses; without depth, retrieval falls back to the distance to the copied source frame).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time

import jax
import numpy as np

from lssvwm.common.frames import model_range_to_uint8
from lssvwm.common.image_metrics import frame_metrics
from lssvwm.common.progress import FrameProgress
from lssvwm.data import eval_tasks
from lssvwm.evaluation import loading, reset, visibility
from lssvwm.evaluation.streaming import HISTORIES, stream_generate
from lssvwm.models import inputs

TASK_SPLITS = {"retrieval": "test", "reasoning": "reasoning"}
PAPER_LENGTHS = {"retrieval": (400, 399), "reasoning": (576, 224)}
MIN_EPISODES_FOR_CI = 32
_FIELDS = ("frames", "actions", "position", "depth", "camera_to_world", "intrinsics")
_GEOMETRY = ("depth", "camera_to_world", "intrinsics")


@dataclasses.dataclass(frozen=True)
class TaskOptions:
    task: str
    context: int | None = None  # None: default_lengths
    horizon: int | None = None
    split: str | None = None  # None: TASK_SPLITS[task]
    # None: MIN_EPISODES_FOR_CI, or every episode of a split that has fewer (with a warning);
    # a number asks for exactly that many (a split with fewer is an error).
    num_episodes: int | None = None
    batch_size: int = 8
    seed: int = 0
    data_dir: str | None = None
    data_overrides: tuple[str, ...] = ()
    reset: str = "never"  # rollout reset policy (lssvwm.evaluation.reset.reset_policy_from_flag)
    history: str = "generated"  # what later frames see of earlier ones (streaming.HISTORIES)


@dataclasses.dataclass
class TaskScores:
    """Per episode e and generated frame j (arrays [E, M] unless noted)."""

    task: str
    context: int
    horizon: int
    split: str
    episode_ids: np.ndarray  # [E]
    psnr: np.ndarray
    ssim: np.ndarray
    copy_psnr: np.ndarray
    copy_ssim: np.ndarray
    distance: np.ndarray | None  # int [E, M]; -1: never seen in the context; None: unknown
    distance_method: str
    generated: np.ndarray  # uint8 [E, M, H, W, C]
    truth: np.ndarray  # uint8 [E, M, H, W, C]
    context_tail: np.ndarray  # uint8 [E, k, H, W, C]: the last context frames (videos)
    options: TaskOptions
    seconds: float = 0.0
    per_frame_seconds: float = 0.0  # median over the batches' units / batch size


def default_lengths(task: str, data, episode_length: int) -> tuple[int, int]:
    """(context, horizon): the dataset's reasoning lengths where it has them (maze3d), else the
    paper's (retrieval 400 + 399, reasoning 576 + 224), cut to fit the episodes."""
    context, horizon = PAPER_LENGTHS[task]
    section = data.get(data.dataset) if data.get("dataset") else None
    if task == "reasoning" and section is not None and "reasoning_context" in section:
        context, horizon = int(section.reasoning_context), int(section.reasoning_horizon)
    if task == "retrieval":
        context = min(context, episode_length)
        horizon = min(horizon, context - 1)
    else:
        context = min(context, episode_length - 1)
        horizon = min(horizon, episode_length - context)
    return context, horizon


def _batched(iterator, size: int):
    batch = []
    for item in iterator:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _distances(
    task: eval_tasks.EvalTask, task_name: str, context: int
) -> tuple[np.ndarray | None, str]:
    """[M] frames since each target view was last seen in the context (-1: never), and how."""
    horizon = task.source_index.shape[0]
    stream_position = context + np.arange(horizon)
    if all(f in task.context for f in _GEOMETRY):
        distance = visibility.frames_since_seen(
            task.target["depth"],
            task.target["camera_to_world"],
            task.context["depth"],
            task.context["camera_to_world"],
            task.context["intrinsics"],
            stream_position,
        )
        return distance, "depth reprojection: latest context frame covering >= 50% of the view"
    if task_name == "retrieval":  # the copied source frame is a context frame showing the view
        return stream_position - task.source_index, "source frame (no depth in the dataset)"
    return None, "unavailable (the dataset stores no depth and camera poses)"


def _stack_fields(fields_list) -> dict[str, np.ndarray]:
    """Per-episode field dicts -> one dict of [b, ...] arrays (the fields all of them hold)."""
    names = set.intersection(*(set(f) for f in fields_list))
    return {name: np.stack([f[name] for f in fields_list]) for name in sorted(names)}


def _batch_progress(progress, done_before: int, episodes: int, frames: int, seconds: float):
    """A batch's unit progress as frames of all episodes (`episodes` real streams); a later
    batch's start (frames = 0) must not restart the clock."""
    if frames or not done_before:
        progress(done_before + frames * episodes, seconds / episodes)


def score_task(run: loading.LoadedRun, options: TaskOptions, *, log=print) -> TaskScores:
    """Generates and scores `options.num_episodes` episodes (module docstring)."""
    started = time.perf_counter()
    num_episodes = options.num_episodes
    if options.task not in eval_tasks.TASKS:
        raise ValueError(f"unknown task {options.task!r}; known: {sorted(eval_tasks.TASKS)}")
    if options.batch_size < 1 or (num_episodes is not None and num_episodes < 1):
        raise ValueError("batch_size and num_episodes must be >= 1")
    for name in ("context", "horizon"):  # None: the default; 0 is a mistake, not "default"
        value = getattr(options, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be >= 1 frame, got {value}")
    data = loading.data_config(run, data_dir=options.data_dir, overrides=options.data_overrides)
    split = options.split or TASK_SPLITS[options.task]
    source, present = loading.open_episodes(data, split, _FIELDS)
    available = source.index.num_episodes
    if num_episodes is None:  # the default fits any run's data: what there is, up to 32
        num_episodes = min(MIN_EPISODES_FOR_CI, available)
        if available < MIN_EPISODES_FOR_CI:
            logging.warning(
                "split %r has %d episodes: evaluating all of them (the default is %d; for "
                "confidence intervals that mean something, generate more held-out episodes, "
                "maze3d: --data=maze3d.%s_episodes=%d)",
                split,
                available,
                MIN_EPISODES_FOR_CI,
                split,
                MIN_EPISODES_FOR_CI,
            )
    elif available < num_episodes:  # asked for explicitly: not silently fewer
        raise ValueError(
            f"split {split!r} has {available} episodes, fewer than --num_episodes="
            f"{num_episodes}: evaluate on --num_episodes={available}, or generate more "
            f"held-out episodes (maze3d: --data=maze3d.{split}_episodes={num_episodes})"
        )
    episode_length = int(source.index.episode_frames().min())
    context, horizon = default_lengths(options.task, data, episode_length)
    context = context if options.context is None else options.context
    horizon = horizon if options.horizon is None else options.horizon
    if options.task == "retrieval" and (context > episode_length or horizon > context - 1):
        raise ValueError(
            f"retrieval walks the context back: --context={context} must be at most the "
            f"episodes' {episode_length} frames and --horizon={horizon} at most context - 1"
        )
    if options.task == "reasoning" and context + horizon > episode_length:
        raise ValueError(
            f"reasoning continues the episode: --context={context} + --horizon={horizon} "
            f"exceeds the episodes' {episode_length} frames"
        )
    unit = run.model_config.unit
    if context % unit or horizon % unit:
        raise ValueError(
            f"context ({context}) and horizon ({horizon}) must be whole numbers of the model's "
            f"unit of {unit} frames"
        )
    field = run.action_field
    inputs.check_fields_present(run.model_config, present, f"split {split!r} of {data.dataset}")
    inverse = loading.inverse_action_table(data.dataset)
    if options.task == "retrieval" and field == "actions" and inverse is None:
        raise ValueError(
            f"retrieval with discrete actions needs an inverse-action table; {data.dataset!r} "
            "has none (evaluate a pose-conditioned model)"
        )
    if options.history not in HISTORIES:
        raise ValueError(f"unknown history {options.history!r}; known: {HISTORIES}")
    log(
        f"{options.task}: {num_episodes} episodes of {data.dataset}/{split}, context "
        f"{context}, horizon {horizon}, batches of {options.batch_size}, history "
        f"{options.history}"
    )

    sampler = run.sampler()
    tasks = eval_tasks.iterate_tasks(
        source,
        options.task,
        context,
        horizon,
        max_episodes=num_episodes,
        inverse_action=inverse,
    )
    collected: dict[str, list] = {}
    distance_method, unit_seconds = "", []
    reset_policy = reset.reset_policy_from_flag(options.reset)
    progress = FrameProgress(num_episodes * horizon, log=log, what=f"{options.task} ")
    done = 0
    for index, batch in enumerate(_batched(tasks, options.batch_size)):
        real = len(batch)
        batch = batch + [batch[-1]] * (options.batch_size - real)  # one shape for every batch
        context_fields = _stack_fields([t.context for t in batch])
        target_fields = _stack_fields([t.target for t in batch])
        context_frames = context_fields["frames"]
        truth_all = target_fields["frames"]  # uint8 [b, M, H, W, 3]
        teacher = None
        if options.history in ("truth", "oracle_depth"):
            teacher = inputs.model_frames(target_fields, run.model_config)
        stream = stream_generate(
            sampler,
            inputs.model_frames(context_fields, run.model_config),
            inputs.model_actions(context_fields, run.model_config),
            inputs.model_actions(target_fields, run.model_config),
            jax.random.fold_in(jax.random.PRNGKey(options.seed), index),
            reset_policy=reset_policy,
            progress=functools.partial(_batch_progress, progress, done, real),
            history=options.history,
            truth_frames=teacher,
        )
        done += real * horizon
        unit_seconds.extend(stream.per_frame_seconds)
        generated = model_range_to_uint8(inputs.rgb_of(stream.frames[:real]))
        truth = truth_all[:real]
        copy = np.broadcast_to(context_frames[:real, -1:], truth.shape)
        model_scores, copy_scores = frame_metrics(generated, truth), frame_metrics(copy, truth)
        for task in batch[:real]:
            distance, distance_method = _distances(task, options.task, context)
            collected.setdefault("distance", []).append(distance)
            collected.setdefault("episode_ids", []).append(task.episode_id)
        collected.setdefault("psnr", []).append(np.asarray(model_scores["psnr"]))
        collected.setdefault("ssim", []).append(np.asarray(model_scores["ssim"]))
        collected.setdefault("copy_psnr", []).append(np.asarray(copy_scores["psnr"]))
        collected.setdefault("copy_ssim", []).append(np.asarray(copy_scores["ssim"]))
        collected.setdefault("generated", []).append(generated)
        collected.setdefault("truth", []).append(truth)
        collected.setdefault("context_tail", []).append(context_frames[:real, -8:])
    distances = collected["distance"]
    return TaskScores(
        task=options.task,
        context=context,
        horizon=horizon,
        split=split,
        episode_ids=np.asarray(collected["episode_ids"], np.int64),
        psnr=np.concatenate(collected["psnr"]),
        ssim=np.concatenate(collected["ssim"]),
        copy_psnr=np.concatenate(collected["copy_psnr"]),
        copy_ssim=np.concatenate(collected["copy_ssim"]),
        distance=None if any(d is None for d in distances) else np.stack(distances),
        distance_method=distance_method,
        generated=np.concatenate(collected["generated"]),
        truth=np.concatenate(collected["truth"]),
        context_tail=np.concatenate(collected["context_tail"]),
        options=options,
        seconds=time.perf_counter() - started,
        per_frame_seconds=float(np.median(unit_seconds)) / options.batch_size,
    )
