"""What a rollout is conditioned on: a path from a file, or an episode's path walked on.

    poses   = load_path_file("path.npy", "poses")                     float32 [N, 3]
    actions = load_path_file("path.json", "actions", num_actions=5)   int32 [N]
    plan    = episode_path(episode, "actions", start=0, context=16, frames=1000,
                           inverse_action=INVERSE_ACTION)

Files: `.npy` (the array), `.npz` (the array under `poses`/`position` or `actions`, or its only
array) or `.json` (a list, or an object with that key). Poses are (x metres, y metres, heading
radians) per frame -- absolute, as the dataset's `position` field; actions are integers in
[0, num_actions). Every problem (shape, dtype, range, non-finite values) is a ValueError that
names the file.

`episode_path` follows the episode after the context and, where it ends, walks it back (and
forth again): stream frame t shows episode frame s(t), a triangle wave over [0, L-1]. Ground
truth therefore exists for every generated frame, defined by copying as for the retrieval task;
walking back uses the pose of the earlier frame, or with discrete actions the inverse of the
action that produced the later one (`inverse_action`, e.g. maze3d's
`maze_explorer.INVERSE_ACTION`), without which only the episode's own length can be rolled out.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np

KINDS = ("poses", "actions")
_KEYS = {"poses": ("poses", "position", "pose"), "actions": ("actions", "action")}


def load_path_file(path: str | pathlib.Path, kind: str, *, num_actions: int | None = None):
    """The poses [N, 3] (float32) or actions [N] (int32) stored in `path` (module doc)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--{kind} file {path} does not exist")
    array = _read(path, kind)
    if kind == "poses":
        return _check_poses(array, path)
    return _check_actions(array, path, num_actions)


def _read(path: pathlib.Path, kind: str) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            for key in _KEYS[kind]:
                if key in archive:
                    return archive[key]
            if len(names) == 1:
                return archive[names[0]]
            raise ValueError(
                f"{path} holds arrays {names}; name the {kind} array one of {list(_KEYS[kind])}"
            )
    if suffix == ".json":
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            for key in _KEYS[kind]:
                if key in data:
                    data = data[key]
                    break
            else:
                raise ValueError(f"{path} has keys {sorted(data)}; expected one of {_KEYS[kind]}")
        try:
            return np.asarray(data)
        except ValueError as error:  # ragged nested lists
            raise ValueError(f"{path}: {kind} are not a rectangular array ({error})") from None
    raise ValueError(f"{path}: unknown file type {suffix!r}; use .npy, .npz or .json")


def _check_poses(array: np.ndarray, path) -> np.ndarray:
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(
            f"{path}: poses must be [frames, 3] (x metres, y metres, heading radians), got "
            f"shape {array.shape}"
        )
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"{path}: poses must be numbers, got dtype {array.dtype}")
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(f"{path}: poses must be finite; row {bad[0]} is {array[bad[0]]}")
    return array


def _check_actions(array: np.ndarray, path, num_actions: int | None) -> np.ndarray:
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{path}: actions must be [frames] integers, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        if array.dtype == bool or not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"{path}: actions must be integers, got dtype {array.dtype}")
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ValueError(f"{path}: actions must be whole numbers, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if num_actions is not None and array.size and (array.min() < 0 or array.max() >= num_actions):
        bad = int(np.flatnonzero((array < 0) | (array >= num_actions))[0])
        raise ValueError(
            f"{path}: action {array[bad]} at frame {bad} is outside [0, {num_actions})"
        )
    return array.astype(np.int32)


@dataclasses.dataclass(frozen=True)
class EpisodePath:
    """Which episode frames a stream shows: `context_index [C]`, then `target_index [N]`
    (the frame each generated one should look like) and the `actions [N, ...]` that get there."""

    context_index: np.ndarray
    target_index: np.ndarray
    actions: np.ndarray

    @property
    def reflected(self) -> bool:
        """Whether the path walks back somewhere (ground truth by copying)."""
        return bool(np.any(np.diff(np.concatenate([self.context_index, self.target_index])) < 0))


def triangle_index(position: np.ndarray, length: int) -> np.ndarray:
    """Episode frame shown at stream position t when walking [0, L-1] forth and back."""
    if length < 2:
        raise ValueError(f"walking an episode back and forth needs >= 2 frames, got {length}")
    period = 2 * (length - 1)
    r = np.asarray(position, np.int64) % period
    return np.where(r <= length - 1, r, period - r)


def episode_path(
    episode: dict,
    field: str,
    *,
    start: int,
    context: int,
    frames: int,
    inverse_action: np.ndarray | None = None,
) -> EpisodePath:
    """The context = episode frames [start, start + context), then `frames` more along the
    episode's path, reflected at its ends (module docstring). `field`: "actions" or "position"."""
    if field not in episode:
        raise ValueError(f"the episode has no {field!r} field (it has {sorted(episode)})")
    values = np.asarray(episode[field])
    length = values.shape[0]
    if context < 1 or frames < 1:
        raise ValueError(f"context and frames must be >= 1, got {context} and {frames}")
    if start < 0 or start + context > length:
        raise ValueError(
            f"a context of {context} frames from frame {start} does not fit the episode "
            f"({length} frames)"
        )
    context_index = np.arange(start, start + context)
    stream = np.arange(start + context, start + context + frames)
    if stream[-1] < length:  # no reflection needed
        return EpisodePath(context_index, stream, values[stream])
    target = triangle_index(stream, length)
    previous = np.concatenate([[context_index[-1]], target[:-1]])
    backwards = target < previous
    if field == "position":
        actions = values[target]
    else:
        if backwards.any() and inverse_action is None:
            raise ValueError(
                f"the episode has {length - start - context} frames after the context, fewer "
                f"than --frames={frames}, and its discrete actions cannot be walked back (no "
                "inverse-action table for this dataset): ask for fewer frames or pass --actions"
            )
        forward_actions = values[target]
        back_actions = (
            np.asarray(inverse_action)[values[previous]] if backwards.any() else forward_actions
        )
        actions = np.where(backwards, back_actions, forward_actions).astype(values.dtype)
    return EpisodePath(context_index, target, actions)
