"""Episodes as dicts of numpy arrays: the field contract, validation and segmenting.

An *episode* is what every dataset generator (maze3d, memory_maze, video_folder) produces and
every builder stores. It is a plain dict of numpy arrays; T frames of H x W pixels:

  frames           uint8   [T, H, W, 3]  RGB
  depth            float32 [T, H, W]     camera-frame z of the surface through the pixel centre
                                         (not the ray length); +inf where nothing is hit (sky)
  camera_to_world  float32 [T, 4, 4]     OpenCV camera axes (x right, y down, z forward), world z up
  intrinsics       float32 [3, 3]        K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], one per episode
  actions          int32   [T]           actions[t] produced frame t from frame t-1
  position         float32 [T, 3]        (x metres, y metres, heading radians, CCW from world +x)

(ARCHITECTURE.md, "Datasets" and "Camera in maze3d".) `frames` and `actions` are always
required; the geometric fields may be left out by datasets that do not have them (a user's
video folder), in which case a dataset stores none of them for any episode.

Storage splits an episode into fixed-length *segments* (ARCHITECTURE.md "Data layout"): record
k of an episode holds frames [k*S, (k+1)*S) of every per-frame field, `intrinsics` unchanged, and
`episode_id`, `segment_index` scalars, so that a training window reads only what it needs.

Public API:
  EPISODE_FIELDS, GEOMETRY_FIELDS, REQUIRED_FIELDS
  EpisodeError                        the ValueError raised for malformed episodes
  validate_episode(episode, fields)   checks presence, dtypes, shapes, lengths, value sanity
  episode_length(episode)             T
  split_into_segments(episode, ...)   -> list of segment records
  join_segments(records)              inverse of split_into_segments (for tests and readers)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """Dtype and shape of one episode field. `shape` uses "T", "H", "W" for symbolic sizes."""

    dtype: np.dtype
    shape: tuple[int | str, ...]
    per_frame: bool  # True when the leading axis is T (the field is split into segments)


EPISODE_FIELDS: dict[str, FieldSpec] = {
    "frames": FieldSpec(np.dtype(np.uint8), ("T", "H", "W", 3), per_frame=True),
    "depth": FieldSpec(np.dtype(np.float32), ("T", "H", "W"), per_frame=True),
    "camera_to_world": FieldSpec(np.dtype(np.float32), ("T", 4, 4), per_frame=True),
    "intrinsics": FieldSpec(np.dtype(np.float32), (3, 3), per_frame=False),
    "actions": FieldSpec(np.dtype(np.int32), ("T",), per_frame=True),
    "position": FieldSpec(np.dtype(np.float32), ("T", 3), per_frame=True),
}
REQUIRED_FIELDS: tuple[str, ...] = ("frames", "actions")
GEOMETRY_FIELDS: tuple[str, ...] = ("depth", "camera_to_world", "intrinsics", "position")
ALL_FIELDS: tuple[str, ...] = tuple(EPISODE_FIELDS)

# Scalars added to every stored segment record.
SEGMENT_ID_FIELDS: tuple[str, ...] = ("episode_id", "segment_index")


class EpisodeError(ValueError):
    """An episode dict does not follow the field contract; the message names the field."""


def _shape_str(shape: Sequence[int | str]) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def validate_episode(
    episode: Mapping[str, np.ndarray],
    fields: Iterable[str] = ALL_FIELDS,
    *,
    where: str = "episode",
    check_values: bool = True,
) -> None:
    """Raises EpisodeError naming the offending field unless `episode` follows the contract.

    Args:
      episode: dict of numpy arrays (extra keys are an error, so typos do not pass silently).
      fields: the fields this dataset stores; must include `frames` and `actions`.
      where: prefix for error messages (e.g. a file name or "maze3d episode 7").
      check_values: also check cheap value invariants (depth positive or +inf, no NaN, the
        last row of camera_to_world is [0, 0, 0, 1], intrinsics upper triangular with K[2,2]=1).
    """
    fields = tuple(fields)
    unknown = [f for f in fields if f not in EPISODE_FIELDS]
    if unknown:
        raise EpisodeError(f"{where}: unknown field(s) requested {unknown}; known: {ALL_FIELDS}")
    for name in REQUIRED_FIELDS:
        if name not in fields:
            raise EpisodeError(f"{where}: field set {fields} lacks required field {name!r}")
    if not isinstance(episode, Mapping):
        raise EpisodeError(f"{where}: expected a dict of arrays, got {type(episode).__name__}")
    missing = [f for f in fields if f not in episode]
    if missing:
        raise EpisodeError(f"{where}: missing field(s) {missing}")
    extra = [k for k in episode if k not in fields]
    if extra:
        raise EpisodeError(f"{where}: unexpected field(s) {extra}; this dataset stores {fields}")

    sizes: dict[str, tuple[int, str]] = {}  # symbol -> (size, field that fixed it)
    for name in fields:
        spec = EPISODE_FIELDS[name]
        value = episode[name]
        if not isinstance(value, np.ndarray):
            raise EpisodeError(
                f"{where}: field {name!r} must be a numpy array, got {type(value).__name__}"
            )
        if value.dtype != spec.dtype:
            raise EpisodeError(
                f"{where}: field {name!r} has dtype {value.dtype}, expected {spec.dtype}"
            )
        if value.ndim != len(spec.shape):
            raise EpisodeError(
                f"{where}: field {name!r} has shape {list(value.shape)}, expected "
                f"{_shape_str(spec.shape)}"
            )
        for axis, (want, got) in enumerate(zip(spec.shape, value.shape, strict=True)):
            if isinstance(want, int):
                if got != want:
                    raise EpisodeError(
                        f"{where}: field {name!r} has shape {list(value.shape)}, expected "
                        f"{_shape_str(spec.shape)} (axis {axis} must be {want})"
                    )
            elif want in sizes and sizes[want][0] != got:
                size, origin = sizes[want]
                what = "length T" if want == "T" else f"size {want}"
                raise EpisodeError(
                    f"{where}: field {name!r} has {what} = {got} but {origin!r} has {size} "
                    f"(shape {list(value.shape)})"
                )
            else:
                sizes.setdefault(want, (got, name))
    if sizes["T"][0] < 1:
        raise EpisodeError(f"{where}: episode has no frames (T = 0)")
    if check_values:
        _check_values(episode, fields, where)


def _check_values(episode: Mapping[str, np.ndarray], fields: tuple[str, ...], where: str) -> None:
    for name in fields:
        value = episode[name]
        if value.dtype.kind == "f" and np.isnan(value).any():
            raise EpisodeError(f"{where}: field {name!r} contains NaN")
    if "depth" in fields:
        depth = episode["depth"]
        if (depth <= 0).any() or np.isneginf(depth).any():
            raise EpisodeError(f"{where}: field 'depth' must be > 0 or +inf (sky)")
    if "camera_to_world" in fields:
        c2w = episode["camera_to_world"]
        if not np.isfinite(c2w).all():
            raise EpisodeError(f"{where}: field 'camera_to_world' has non-finite entries")
        if not np.allclose(c2w[:, 3, :], [0.0, 0.0, 0.0, 1.0]):
            raise EpisodeError(f"{where}: field 'camera_to_world' last row must be [0, 0, 0, 1]")
    if "intrinsics" in fields:
        k = episode["intrinsics"]
        if not np.isfinite(k).all() or k[2, 2] != 1 or k[1, 0] != 0 or k[2, 0] or k[2, 1]:
            raise EpisodeError(
                f"{where}: field 'intrinsics' must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]"
            )
    if "position" in fields and not np.isfinite(episode["position"]).all():
        raise EpisodeError(f"{where}: field 'position' has non-finite entries")


def episode_length(episode: Mapping[str, np.ndarray]) -> int:
    """Number of frames T of an episode."""
    return int(episode["frames"].shape[0])


def split_into_segments(
    episode: Mapping[str, np.ndarray],
    segment_length: int,
    episode_id: int,
    *,
    drop_remainder: bool = False,
) -> list[dict[str, np.ndarray]]:
    """Cuts an episode into records of `segment_length` frames each.

    Returns one dict per segment with every field of the episode (per-frame fields sliced,
    `intrinsics` repeated) plus int32 scalars `episode_id` and `segment_index`.

    Raises EpisodeError if T is not a multiple of `segment_length`, unless `drop_remainder`,
    in which case the last T % segment_length frames are left out.
    """
    if segment_length < 1:
        raise ValueError(f"segment_length must be >= 1, got {segment_length}")
    length = episode_length(episode)
    num_segments, remainder = divmod(length, segment_length)
    if remainder and not drop_remainder:
        raise EpisodeError(
            f"episode {episode_id}: length {length} is not a multiple of segment_length "
            f"{segment_length} (pass drop_remainder=True to cut the last {remainder} frames)"
        )
    records = []
    for k in range(num_segments):
        window = slice(k * segment_length, (k + 1) * segment_length)
        record = {
            name: (value[window] if EPISODE_FIELDS[name].per_frame else value)
            for name, value in episode.items()
        }
        record["episode_id"] = np.int32(episode_id)
        record["segment_index"] = np.int32(k)
        records.append(record)
    return records


def join_segments(records: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenates consecutive segment records of one episode back into an episode dict."""
    if not records:
        raise ValueError("join_segments needs at least one record")
    episode_ids = {int(r["episode_id"]) for r in records}
    if len(episode_ids) != 1:
        raise ValueError(f"records come from several episodes: {sorted(episode_ids)}")
    indices = [int(r["segment_index"]) for r in records]
    if indices != list(range(indices[0], indices[0] + len(indices))):
        raise ValueError(f"segment indices are not consecutive: {indices}")
    episode = {}
    for name in records[0]:
        if name in SEGMENT_ID_FIELDS:
            continue
        if EPISODE_FIELDS[name].per_frame:
            episode[name] = np.concatenate([r[name] for r in records], axis=0)
        else:
            episode[name] = records[0][name]
    return episode
