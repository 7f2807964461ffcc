"""video_folder: a user's own episodes, one file each, as a TFDS dataset (builder `video_folder`).

Files in `path` (sorted by name; episode i of the dataset is file i):

  *.npz   TECO-style: `video` uint8 [T, H, W, 3] and `actions` [T] (any integer dtype that
          fits int32); optional `depth` float32 [T, H, W], `camera_to_world` float32 [T, 4, 4],
          `intrinsics` float32 [3, 3], `position` float32 [T, 3] with the meanings of
          `lssvwm.data.episodes` (ARCHITECTURE.md conventions).
  *.mp4   frames decoded with imageio's ffmpeg plugin (install the `video` extra), plus a
          sidecar `<name>.npz` beside it with `actions` (and optional geometry as above).

Every file must hold the fields the dataset stores (`fields` parameter: frames and actions,
plus any geometry fields you list) with the same frame size; frames after the last whole
segment of an episode are cut, and an episode shorter than one segment is an error. Problems
are reported with the file name: missing arrays, wrong dtypes, mismatched lengths or sizes.
The last `test_episodes` files form the `test` split.

The config name includes a fingerprint of the folder listing (names, sizes, modification
times), so editing the folder builds a new dataset instead of reusing a stale one.

Public API: default_params(path), list_episode_files(path), load_episode_file(path, fields),
            VideoFolderSource, VideoFolder
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from lssvwm.config_schema import check_known_keys
from lssvwm.data import episodes as episodes_lib
from lssvwm.data import tfds_common

EXTENSIONS = (".npz", ".mp4")


def default_params(path: str = "") -> dict[str, Any]:
    return {
        "path": path,
        "segment_length": 32,
        "fields": ["frames", "actions"],
        "test_episodes": 0,
        "episodes_per_shard": 8,
        "fingerprint": "",
    }


def list_episode_files(path: str) -> list[str]:
    """Episode files in `path`, sorted (sidecar `.npz` files of `.mp4` videos excluded)."""
    if not path:
        raise ValueError("video_folder: set data.video_folder.path to a folder of .npz/.mp4 files")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"video_folder: {path!r} is not a folder")
    names = sorted(os.listdir(path))
    videos = {os.path.splitext(n)[0] for n in names if n.endswith(".mp4")}
    files = [
        os.path.join(path, n)
        for n in names
        if n.endswith(EXTENSIONS) and not (n.endswith(".npz") and n[:-4] in videos)
    ]
    if not files:
        raise FileNotFoundError(f"video_folder: no .npz or .mp4 files in {path!r}")
    return files


def folder_fingerprint(files: Sequence[str]) -> str:
    digest = hashlib.sha1()
    for name in files:
        stat = os.stat(name)
        digest.update(f"{os.path.basename(name)}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        sidecar = os.path.splitext(name)[0] + ".npz"
        if name.endswith(".mp4") and os.path.exists(sidecar):
            stat = os.stat(sidecar)
            digest.update(f"+{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:12]


def _read_npz(path: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except Exception as error:  # a corrupt or non-npz file: say which
        raise episodes_lib.EpisodeError(f"{path}: cannot read as .npz ({error})") from error


def _read_mp4(path: str) -> np.ndarray:
    try:
        import imageio.v3 as iio
    except ImportError as error:
        raise ImportError(
            f"{path}: reading .mp4 needs imageio and imageio-ffmpeg (pip install 'lssvwm[video]')"
        ) from error
    frames = iio.imread(path, plugin="FFMPEG", index=None)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise episodes_lib.EpisodeError(f"{path}: decoded video has shape {frames.shape}")
    return np.ascontiguousarray(frames, np.uint8)


def load_episode_file(
    path: str, fields: Sequence[str], frame_size: tuple[int, int] | None = None
) -> dict[str, np.ndarray]:
    """Reads one episode file into an episode dict with `fields`; errors name the file.

    With `frame_size` (height, width), frames of another size are an error too.
    """
    if path.endswith(".mp4"):
        sidecar = os.path.splitext(path)[0] + ".npz"
        if not os.path.exists(sidecar):
            raise episodes_lib.EpisodeError(
                f"{path}: no sidecar {os.path.basename(sidecar)} with the `actions` array"
            )
        arrays = _read_npz(sidecar)
        arrays["video"] = _read_mp4(path)
        where = f"{path} (+ {os.path.basename(sidecar)})"
    else:
        arrays = _read_npz(path)
        where = path
    source_key = {"frames": "video"}
    missing = [source_key.get(f, f) for f in fields if source_key.get(f, f) not in arrays]
    if missing:
        raise episodes_lib.EpisodeError(
            f"{where}: missing array(s) {missing} (has {sorted(arrays)}; expected TECO-style "
            "`video` uint8 [T,H,W,3] and `actions` [T], plus the geometry fields configured)"
        )
    episode = {f: arrays[source_key.get(f, f)] for f in fields}
    actions = episode["actions"]
    if actions.dtype.kind in "iu":
        info = np.iinfo(np.int32)
        if actions.size and (actions.min() < info.min or actions.max() > info.max):
            raise episodes_lib.EpisodeError(f"{where}: 'actions' values do not fit int32")
        episode["actions"] = actions.astype(np.int32)
    # Anything else (float actions, float video, ...) is reported by the validation.
    episodes_lib.validate_episode(episode, fields, where=where)
    size = tuple(episode["frames"].shape[1:3])
    if frame_size is not None and size != tuple(frame_size):
        raise episodes_lib.EpisodeError(
            f"{where}: frames are {size[0]}x{size[1]} but the dataset's are "
            f"{frame_size[0]}x{frame_size[1]} (set by the first file)"
        )
    return episode


@dataclasses.dataclass(frozen=True)
class VideoFolderSource:
    """Picklable `(split, index) -> episode` over a fixed list of files."""

    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    fields: tuple[str, ...]
    frame_size: tuple[int, int]
    segment_length: int

    def __call__(self, split: str, index: int) -> dict[str, np.ndarray]:
        path = (self.train_files if split == "train" else self.test_files)[index]
        episode = load_episode_file(path, self.fields, self.frame_size)
        length = episodes_lib.episode_length(episode)
        if length < self.segment_length:
            raise episodes_lib.EpisodeError(
                f"{path}: {length} frames, fewer than one segment ({self.segment_length}); "
                "lower data.video_folder.segment_length or drop the file"
            )
        return episode


class VideoFolder(tfds_common.EpisodeDatasetBuilder):
    """A user's folder of `.npz`/`.mp4` episodes (TECO-style `video` + `actions`)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}

    @classmethod
    def params_from_config(cls, data_config) -> dict:
        params = {**default_params(), **super().params_from_config(data_config)}
        return cls.complete_params(params)

    @classmethod
    def complete_params(cls, params: Mapping[str, Any]) -> dict:
        """Validates params, makes the path absolute and fingerprints the folder."""
        check_known_keys("data.video_folder", params, default_params())
        params = {**default_params(), **params}
        params["path"] = (
            os.path.abspath(os.path.expanduser(params["path"])) if params["path"] else ""
        )
        files = list_episode_files(params["path"])
        params["fields"] = list(params["fields"])
        tfds_common.SegmentLayout(1, 1, 1, tuple(params["fields"]))  # validates field names
        if not 0 <= params["test_episodes"] < len(files):
            raise ValueError(
                f"test_episodes must be in [0, {len(files)}) for the {len(files)} files in "
                f"{params['path']}, got {params['test_episodes']}"
            )
        params["fingerprint"] = folder_fingerprint(files)
        return params

    @classmethod
    def builder_config_for(cls, params: Mapping[str, Any]) -> tfds_common.EpisodeBuilderConfig:
        params = cls.complete_params(params) if not params.get("fingerprint") else dict(params)
        name = tfds_common.config_name_for(params, prefix=_safe(os.path.basename(params["path"])))
        return tfds_common.EpisodeBuilderConfig(name=name, params=params)

    def episode_files(self) -> dict[str, list[str]]:
        files = list_episode_files(self.params["path"])
        test = self.params["test_episodes"]
        return {"train": files[: len(files) - test], "test": files[len(files) - test :]}

    def layout(self) -> tfds_common.SegmentLayout:
        """Frame size from the first file (read once per builder)."""
        if getattr(self, "_layout", None) is None:
            first = self.episode_files()["train"][0]
            frames = load_episode_file(first, self.params["fields"])["frames"]
            self._layout = tfds_common.SegmentLayout(
                height=frames.shape[1],
                width=frames.shape[2],
                segment_length=self.params["segment_length"],
                fields=tuple(self.params["fields"]),
            )
        return self._layout

    def split_episodes(self) -> dict[str, int]:
        return {split: len(files) for split, files in self.episode_files().items() if files}

    def episode_source(self) -> VideoFolderSource:
        files, layout = self.episode_files(), self.layout()
        return VideoFolderSource(
            tuple(files["train"]),
            tuple(files["test"]),
            tuple(self.params["fields"]),
            (layout.height, layout.width),
            self.params["segment_length"],
        )

    def episodes_per_shard(self) -> int:
        return self.params["episodes_per_shard"]

    def drop_remainder(self) -> bool:
        return True


def _safe(name: str) -> str:
    cleaned = "".join(c if c.isalnum() else "_" for c in name)[:40]
    return cleaned or "folder"
