"""The paper's two evaluation tasks as pure slicing of stored episodes.

Retrieval (ARCHITECTURE.md "Retrieval ground truth"): a context of N frames, then the same
path walked backwards. Ground truth is defined by copying, not re-simulation: generated frame
N + j is conditioned on the pose of context frame N - 2 - j and scored against that frame, for
j = 0 .. M - 1, so M <= N - 1 (the paper's "400 + 400" is at most 400 + 399 under this rule).
The action that moves from frame N + j - 1 to frame N + j undoes the action that produced
context frame N - 1 - j, so with an inverse table (maze3d: `maze_explorer.INVERSE_ACTION`) the
discrete actions of the walk back are `inverse[actions[N - 1 - j]]`.

Reasoning: a context of N frames, then the episode's own next M frames. maze3d's `reasoning`
split is generated so that those frames only pass through places visited in the context (see
`lssvwm.data.maze3d`), seen again from new viewpoints.

Both return an `EvalTask`: `context` (each per-frame field cut to N frames, `intrinsics` as is),
`target` (the fields of the M frames to generate: the pose/position/actions a model conditions
on and the frames/depth it is scored against) and `source_index [M]` (which episode frame each
target frame is). Paper settings: retrieval N = 400, M = 399; reasoning N = 576, M = 224.

Public API: EvalTask, retrieval_task, reasoning_task, TASKS, iterate_tasks
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

import numpy as np

from lssvwm.data import episodes as episodes_lib


@dataclasses.dataclass(frozen=True)
class EvalTask:
    """A context and the frames to generate after it, sliced from one episode."""

    context: dict[str, np.ndarray]
    target: dict[str, np.ndarray]
    source_index: np.ndarray  # int64 [M]: episode frame copied into target frame j
    episode_id: int = -1


def _slice_fields(episode: Mapping[str, np.ndarray], index) -> dict[str, np.ndarray]:
    out = {}
    for name, value in episode.items():
        spec = episodes_lib.EPISODE_FIELDS.get(name)
        if spec is not None and not spec.per_frame:
            out[name] = value
        else:
            out[name] = value[index]
    return out


def _check_lengths(name: str, length: int, context: int, horizon: int, limit: int) -> None:
    if context < 1 or horizon < 1:
        raise ValueError(f"{name}: context and horizon must be >= 1, got {context}, {horizon}")
    if context > length:
        raise ValueError(f"{name}: context {context} is longer than the episode ({length})")
    if horizon > limit:
        raise ValueError(f"{name}: horizon {horizon} exceeds the maximum {limit} here")


def retrieval_task(
    episode: Mapping[str, np.ndarray],
    context: int,
    horizon: int,
    *,
    inverse_action: np.ndarray | None = None,
    episode_id: int = -1,
) -> EvalTask:
    """Context = frames [0, N); target frame j = context frame N - 2 - j (copied).

    `target["actions"]` is `inverse_action[actions[N - 1 - j]]` when an inverse table is given
    and left out otherwise (a dataset's actions need not be invertible).
    """
    length = episodes_lib.episode_length(episode)
    _check_lengths("retrieval", length, context, horizon, limit=context - 1)
    source = context - 2 - np.arange(horizon)
    target = _slice_fields(episode, source)
    if "actions" in episode:
        if inverse_action is None:
            del target["actions"]
        else:
            undone = np.asarray(episode["actions"])[context - 1 - np.arange(horizon)]
            target["actions"] = np.asarray(inverse_action, np.int32)[undone]
    return EvalTask(
        context=_slice_fields(episode, slice(0, context)),
        target=target,
        source_index=source.astype(np.int64),
        episode_id=episode_id,
    )


def reasoning_task(
    episode: Mapping[str, np.ndarray], context: int, horizon: int, *, episode_id: int = -1
) -> EvalTask:
    """Context = frames [0, N); target = frames [N, N + M) of the same episode."""
    length = episodes_lib.episode_length(episode)
    _check_lengths("reasoning", length, context, horizon, limit=length - context)
    source = np.arange(context, context + horizon)
    return EvalTask(
        context=_slice_fields(episode, slice(0, context)),
        target=_slice_fields(episode, source),
        source_index=source.astype(np.int64),
        episode_id=episode_id,
    )


TASKS = {"retrieval": retrieval_task, "reasoning": reasoning_task}


def iterate_tasks(
    source,
    task: str,
    context: int,
    horizon: int,
    *,
    max_episodes: int | None = None,
    inverse_action: np.ndarray | None = None,
) -> Iterator[EvalTask]:
    """Tasks sliced from the episodes of a `lssvwm.data.sources.SegmentSource`, in order.

    Use the `test` split for retrieval and the `reasoning` split for reasoning (maze3d).
    """
    from lssvwm.data import sources  # local: sources imports TFDS, the slicing does not

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {sorted(TASKS)}")
    count = source.index.num_episodes
    if max_episodes is not None:
        count = min(count, max_episodes)
    for e in range(count):
        episode = sources.read_episode(source, e)
        episode_id = int(source.index.episode_ids[e])
        if task == "retrieval":
            yield retrieval_task(
                episode, context, horizon, inverse_action=inverse_action, episode_id=episode_id
            )
        else:
            yield reasoning_task(episode, context, horizon, episode_id=episode_id)
