"""A TFDS builder base for episode datasets: parallel, resumable, array_record, no TensorFlow.

A dataset of episodes (see `lssvwm.data.episodes`) is a `tfds.core.GeneratorBasedBuilder`
subclass that only says *what* an episode is:

    class MyWorld(EpisodeDatasetBuilder):
        VERSION = tfds.core.Version("1.0.0")
        BUILDER_CONFIGS = [EpisodeBuilderConfig(name="default", params={...})]

        def layout(self) -> SegmentLayout: ...            # H, W, segment length, stored fields
        def split_episodes(self) -> dict[str, int]: ...   # {"train": 100, "test": 10}
        def episode_source(self) -> EpisodeSource: ...    # picklable (split, index) -> episode

and gets:
  * features made only of `tfds.features.Tensor` (bytes-encoded, so writing a 64-frame segment
    costs ~1 ms instead of ~150 ms for float lists), stored as `array_record`: building and
    reading need no TensorFlow (the `Image`/`Video` features would import it);
  * `download_and_prepare()` that generates episodes in a multiprocessing pool (run in a child
    process, `lssvwm.data.shard_writer`, unless the caller is one of lssvwm's command lines, so
    that it works from any script or notebook), one array_record shard per group of
    `episodes_per_shard` episodes, written atomically into a staging folder
    (`<data_dir>/_lssvwm_partial/<name>/<config>/<version>/`) so that an interrupted build resumes
    with the shards already written, with a progress bar counting frames;
  * an episode index (`episode_index.json` beside the shards) that the grain pipelines use to
    map (episode, segment) to record numbers without reading frames.

Records are written in episode order then segment order (TFDS shuffling disabled), so record
`first_record[e] + k` of a split is segment k of its e-th episode.

`_generate_examples` is the plain sequential reference path (yields the same records in the
same order); `download_and_prepare()` does not use it, tests compare the two.

Public API:
  SegmentLayout, segment_features(layout)
  EpisodeSource (protocol), EpisodeBuilderConfig, EpisodeDatasetBuilder
  EPISODE_INDEX_FILENAME, read_episode_index(data_path)
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import inspect
import json
import logging
import multiprocessing
import os
import queue as queue_lib
import shutil
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent import futures
from typing import Any, Protocol

import numpy as np
import tensorflow_datasets as tfds
from array_record.python import array_record_module
from etils import epath

from lssvwm.data import episodes as episodes_lib

EPISODE_INDEX_FILENAME = "episode_index.json"
_STAGING_DIRNAME = "_lssvwm_partial"
_SHARD_SIDECAR_SUFFIX = ".index.json"


# --------------------------------------------------------------------------------------------
# Features.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SegmentLayout:
    """What one stored record looks like: frame size, frames per record and stored fields."""

    height: int
    width: int
    segment_length: int
    fields: tuple[str, ...] = episodes_lib.ALL_FIELDS

    def __post_init__(self):
        if min(self.height, self.width, self.segment_length) < 1:
            raise ValueError(f"height, width and segment_length must be >= 1: {self}")
        _check_fields(self.fields)


def _check_fields(fields: Sequence[str]) -> None:
    unknown = [f for f in fields if f not in episodes_lib.EPISODE_FIELDS]
    if unknown:
        raise ValueError(f"unknown field(s) {unknown}; known: {episodes_lib.ALL_FIELDS}")
    for name in episodes_lib.REQUIRED_FIELDS:
        if name not in fields:
            raise ValueError(f"fields {tuple(fields)} lack the required field {name!r}")


def segment_features(layout: SegmentLayout) -> tfds.features.FeaturesDict:
    """The TFDS features of one segment record (all `Tensor`, bytes-encoded)."""
    sizes = {"T": layout.segment_length, "H": layout.height, "W": layout.width}
    features: dict[str, Any] = {
        "episode_id": tfds.features.Tensor(shape=(), dtype=np.int32),
        "segment_index": tfds.features.Tensor(shape=(), dtype=np.int32),
    }
    for name in layout.fields:
        spec = episodes_lib.EPISODE_FIELDS[name]
        shape = tuple(sizes[s] if isinstance(s, str) else s for s in spec.shape)
        features[name] = tfds.features.Tensor(
            shape=shape, dtype=spec.dtype.type, encoding=tfds.features.Encoding.BYTES
        )
    return tfds.features.FeaturesDict(features)


# --------------------------------------------------------------------------------------------
# Builder.
# --------------------------------------------------------------------------------------------


class EpisodeSource(Protocol):
    """A picklable callable generating one episode; must be deterministic in (split, index)."""

    def __call__(self, split: str, index: int) -> dict[str, np.ndarray]: ...


@dataclasses.dataclass(eq=False)
class EpisodeBuilderConfig(tfds.core.BuilderConfig):
    """A named configuration; `params` are JSON-able generation parameters."""

    params: dict = dataclasses.field(default_factory=dict)


def config_name_for(params: Mapping[str, Any], prefix: str = "") -> str:
    """A stable directory-safe name for a parameter dict (changes whenever a value changes)."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    digest = hashlib.sha1(blob).hexdigest()[:10]
    return f"{prefix}_{digest}" if prefix else f"custom_{digest}"


@dataclasses.dataclass(frozen=True)
class _ShardTask:
    """Everything a worker needs to write one shard (picklable)."""

    source: EpisodeSource
    layout: SegmentLayout
    split: str
    episode_indices: tuple[int, ...]
    path: str  # final staging path of the array_record file
    drop_remainder: bool


# Set in pool workers by `_init_worker`: a queue receiving the frame count of each episode.
_PROGRESS_QUEUE = None


def _init_worker(progress_queue) -> None:
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = progress_queue


def _episode_records(
    source: EpisodeSource,
    layout: SegmentLayout,
    split: str,
    index: int,
    drop_remainder: bool,
) -> tuple[list[dict[str, np.ndarray]], int]:
    """Generates, validates and segments episode `index`; returns (records, frames generated)."""
    episode = source(split, index)
    where = f"{split} episode {index}"
    episodes_lib.validate_episode(episode, layout.fields, where=where)
    height, width = episode["frames"].shape[1:3]
    if (height, width) != (layout.height, layout.width):
        raise episodes_lib.EpisodeError(
            f"{where}: field 'frames' is {height}x{width}, the dataset stores "
            f"{layout.height}x{layout.width}"
        )
    records = episodes_lib.split_into_segments(
        episode, layout.segment_length, episode_id=index, drop_remainder=drop_remainder
    )
    if not records:
        raise episodes_lib.EpisodeError(
            f"{where}: {episodes_lib.episode_length(episode)} frames is shorter than one "
            f"segment ({layout.segment_length} frames)"
        )
    return records, episodes_lib.episode_length(episode)


def _write_shard(task: _ShardTask) -> None:
    """Writes one shard file and its sidecar index, both atomically (tmp file + rename)."""
    features = segment_features(task.layout)
    serializer = tfds.core.example_serializer.ExampleSerializer(features.get_serialized_info())
    tmp_path = f"{task.path}.tmp{os.getpid()}"
    writer = array_record_module.ArrayRecordWriter(tmp_path, "group_size:1")
    index = []
    try:
        for episode_index in task.episode_indices:
            records, num_frames = _episode_records(
                task.source, task.layout, task.split, episode_index, task.drop_remainder
            )
            for record in records:
                writer.write(serializer.serialize_example(features.encode_example(record)))
            index.append([episode_index, len(records)])
            if _PROGRESS_QUEUE is not None:
                _PROGRESS_QUEUE.put(num_frames)
    except BaseException:
        writer.close()
        os.remove(tmp_path)
        raise
    writer.close()
    os.replace(tmp_path, task.path)
    sidecar_tmp = f"{task.path}{_SHARD_SIDECAR_SUFFIX}.tmp{os.getpid()}"
    with open(sidecar_tmp, "w") as f:
        json.dump({"episodes": index, "num_bytes": os.path.getsize(task.path)}, f)
    os.replace(sidecar_tmp, task.path + _SHARD_SIDECAR_SUFFIX)


def _run_tasks(
    tasks: Sequence[_ShardTask],
    num_workers: int,
    start_method: str,
    progress,
) -> None:
    """Runs shard tasks in-process (num_workers == 0) or in a pool, updating `progress`.

    A "spawn" or "forkserver" pool re-imports the caller's `__main__` in every worker; a script
    that builds at top level (no `if __name__ == "__main__":` guard) would then build again in
    each worker and the pool breaks. So the pool runs in this process only where `__main__` is
    known to be safe (one of lssvwm's own command lines, or "fork", which re-imports nothing);
    anywhere else -- a user's script, a notebook, pytest -- it runs in a child process started
    as `python -m lssvwm.data.shard_writer`, whose own `__main__` is guarded. That child reports
    progress and re-raises a worker's exception here, so the caller sees the same behaviour.
    """
    if not tasks:
        return
    if num_workers == 0:
        _run_in_this_process(tasks, progress)
    elif start_method == "fork" or _main_is_ours():
        _run_pool(tasks, num_workers, start_method, progress)
    else:
        from lssvwm.data import shard_writer  # imports nothing heavy

        shard_writer.run_in_child_process(tasks, num_workers, start_method, progress)


def _main_is_ours() -> bool:
    """Whether `__main__` is an lssvwm module: its command lines guard their `main()`."""
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None) or ""
    return name.startswith("lssvwm.")


def _run_in_this_process(tasks: Sequence[_ShardTask], progress) -> None:
    global _PROGRESS_QUEUE
    local_queue: queue_lib.SimpleQueue = queue_lib.SimpleQueue()
    _PROGRESS_QUEUE = local_queue
    try:
        for task in tasks:
            _write_shard(task)
            while not local_queue.empty():
                progress.update(local_queue.get())
    finally:
        _PROGRESS_QUEUE = None


def _run_pool(tasks: Sequence[_ShardTask], num_workers: int, start_method: str, progress) -> None:
    """Runs shard tasks in a process pool of this process (see `_run_tasks` for when)."""
    # A ProcessPoolExecutor (unlike multiprocessing.Pool) fails fast with BrokenProcessPool
    # when a worker dies, instead of replacing it forever.
    context = multiprocessing.get_context(start_method)
    progress_queue = context.Queue()
    with futures.ProcessPoolExecutor(
        max_workers=min(num_workers, len(tasks)),
        mp_context=context,
        initializer=_init_worker,
        initargs=(progress_queue,),
    ) as pool:
        pending = {pool.submit(_write_shard, task) for task in tasks}
        try:
            while pending:
                done, pending = futures.wait(pending, timeout=0.2)
                for future in done:
                    future.result()  # re-raises a worker's exception here
                _drain(progress_queue, progress)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        finally:
            _drain(progress_queue, progress)


def _drain(progress_queue, progress) -> None:
    while True:
        try:
            progress.update(progress_queue.get_nowait())
        except queue_lib.Empty:
            return


class EpisodeDatasetBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base builder for datasets of episodes stored as fixed-length segment records.

    Constructor keywords beside TFDS's (`data_dir`, `config`, `version`):
      num_workers: processes generating shards (default: all CPUs; 0 = in this process).
      start_method: multiprocessing start method for the pool ("spawn" is safe when JAX or
        other threads run in the parent; "fork" starts faster). With "spawn" or "forkserver"
        the pool runs in a child process unless `__main__` is an lssvwm command line
        (`_run_tasks`), so a caller's unguarded script is never re-imported.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}

    def __init__(
        self,
        *,
        num_workers: int | None = None,
        start_method: str = "spawn",
        file_format: str = "array_record",
        **kwargs: Any,
    ):
        # TFDS's own calls (tfds.data_source without data_dir) pass the FileFormat enum.
        if getattr(file_format, "value", file_format) != "array_record":
            raise ValueError(f"episode datasets are stored as array_record, got {file_format!r}")
        self._num_workers = (os.cpu_count() or 1) if num_workers is None else num_workers
        if self._num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self._start_method = start_method
        super().__init__(file_format=file_format, **kwargs)

    # TFDS looks up a builder's source file (for an optional checksums file) through
    # `importlib_resources` when the builder lives in a package; that module is not a TFDS
    # dependency, and the plain file path is all it needs.
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        return epath.Path(inspect.getfile(cls))

    # ---- construction from a `data` ConfigDict ------------------------------------------

    @classmethod
    def from_config(cls, data_config, **builder_kwargs: Any) -> EpisodeDatasetBuilder:
        """The builder for `data_config`: `data_config.<name>` holds the generation params.

        A config whose params equal a preset in BUILDER_CONFIGS gets that preset's name;
        any other gets `custom_<hash of params>`, so changed params never reuse old data.
        `data_config.data_dir` and `data_config.num_workers` are used when present.
        """
        params = cls.params_from_config(data_config)
        kwargs = {}
        if data_config.get("data_dir"):
            kwargs["data_dir"] = os.path.expanduser(data_config.data_dir)
        if data_config.get("num_workers") is not None:
            kwargs["num_workers"] = data_config.num_workers
        kwargs.update(builder_kwargs)
        return cls(config=cls.builder_config_for(params), **kwargs)

    @classmethod
    def params_from_config(cls, data_config) -> dict:
        """JSON-able generation params: the `data_config.<name>` section as plain values."""
        if cls.name not in data_config:
            raise KeyError(f"data config has no section {cls.name!r} (keys: {list(data_config)})")
        section = data_config[cls.name]
        section = section.to_dict() if hasattr(section, "to_dict") else dict(section)
        return json.loads(json.dumps(section, sort_keys=True))  # tuples -> lists, canonical

    @classmethod
    def builder_config_for(cls, params: Mapping[str, Any]) -> EpisodeBuilderConfig:
        params = json.loads(json.dumps(dict(params), sort_keys=True))
        for preset in cls.BUILDER_CONFIGS:
            if json.loads(json.dumps(preset.params, sort_keys=True)) == params:
                return preset
        return EpisodeBuilderConfig(name=config_name_for(params), params=params)

    # ---- what a subclass provides -------------------------------------------------------

    @abc.abstractmethod
    def layout(self) -> SegmentLayout:
        """Frame size, segment length and stored fields of this config."""

    @abc.abstractmethod
    def split_episodes(self) -> dict[str, int]:
        """Number of episodes per split, e.g. {"train": 100, "test": 8}."""

    @abc.abstractmethod
    def episode_source(self) -> EpisodeSource:
        """A picklable callable `(split, index) -> episode dict`, deterministic."""

    def episodes_per_shard(self) -> int:
        """Episodes per array_record shard (the unit of parallel work and of resuming)."""
        return 1

    def drop_remainder(self) -> bool:
        """Whether frames beyond the last whole segment are cut (else they are an error)."""
        return False

    def expected_episode_length(self) -> int | None:
        """Frames per episode when known in advance (sizes the progress bar), else None."""
        return None

    def expected_total_frames(self) -> int | None:
        """Frames in all splits when known in advance (sizes the progress bar), else None."""
        length = self.expected_episode_length()
        return None if length is None else length * sum(self.split_episodes().values())

    def description(self) -> str:
        return self.__doc__ or ""

    # ---- TFDS hooks ---------------------------------------------------------------------

    @property
    def params(self) -> dict:
        """The generation parameters of the selected config."""
        return dict(self.builder_config.params)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.description(),
            features=segment_features(self.layout()),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        return {split: self._generate_examples(split=split) for split in self.split_episodes()}

    def _generate_examples(self, split: str) -> Iterator[tuple[str, dict]]:
        """Sequential reference path: the same records, in the same order, as the fast path."""
        source, layout = self.episode_source(), self.layout()
        for index in range(self.split_episodes()[split]):
            records, _ = _episode_records(source, layout, split, index, self.drop_remainder())
            for record in records:
                yield f"{index:09d}_{int(record['segment_index']):06d}", record

    def staging_path(self) -> epath.Path:
        """Where shards wait until every shard of every split is written."""
        return (
            self.data_dir_root
            / _STAGING_DIRNAME
            / self.name
            / self.builder_config.name
            / str(self.version)
        )

    def _download_and_prepare(self, dl_manager, download_config) -> None:
        """Writes every split's shards in parallel (resuming staged ones), then moves them in."""
        del dl_manager, download_config
        staging = self.staging_path()
        staging.mkdir(parents=True, exist_ok=True)
        for leftover in staging.glob("*.tmp*"):  # from a process killed mid-shard
            leftover.unlink()
        (staging / "params.json").write_text(json.dumps(self.params, sort_keys=True, indent=1))
        layout, source = self.layout(), self.episode_source()
        per_shard = self.episodes_per_shard()
        plan: dict[str, list[_ShardTask]] = {}
        done_frames = 0
        todo: list[_ShardTask] = []
        for split, num_episodes in self.split_episodes().items():
            if num_episodes < 1:
                raise ValueError(f"split {split!r} has {num_episodes} episodes; need >= 1")
            num_shards = -(-num_episodes // per_shard)
            template = self._get_filename_template(split)
            plan[split] = []
            for shard in range(num_shards):
                indices = tuple(
                    range(shard * per_shard, min((shard + 1) * per_shard, num_episodes))
                )
                name = template.relative_filepath(shard_index=shard, num_shards=num_shards)
                task = _ShardTask(
                    source, layout, split, indices, os.fspath(staging / name), self.drop_remainder()
                )
                plan[split].append(task)
                if os.path.exists(task.path + _SHARD_SIDECAR_SUFFIX):
                    with open(task.path + _SHARD_SIDECAR_SUFFIX) as f:
                        done_frames += layout.segment_length * sum(
                            n for _, n in json.load(f)["episodes"]
                        )
                else:
                    todo.append(task)
        resumed = sum(len(tasks) for tasks in plan.values()) - len(todo)
        if resumed:
            logging.info(
                "%s: resuming, %d shards already written in %s", self.name, resumed, staging
            )
        total = self.expected_total_frames()
        start = time.time()
        with tfds.core.utils.tqdm(
            desc=f"Generating {self.name}/{self.builder_config.name}",
            unit=" frames",
            initial=done_frames,
            total=total,
            unit_scale=True,
        ) as progress:
            _run_tasks(todo, self._num_workers, self._start_method, progress)
            generated = progress.n - done_frames
        elapsed = time.time() - start
        self.last_build_stats = {"frames": generated, "seconds": elapsed, "shards": len(todo)}
        logging.info(
            "%s: wrote %d shards, %d frames in %.1fs", self.name, len(todo), generated, elapsed
        )

        split_infos, episode_index = [], {}
        for split, tasks in plan.items():
            shard_lengths, num_bytes, entries = [], 0, []
            for task in tasks:
                with open(task.path + _SHARD_SIDECAR_SUFFIX) as f:
                    sidecar = json.load(f)
                shard_lengths.append(sum(n for _, n in sidecar["episodes"]))
                num_bytes += sidecar["num_bytes"]
                entries.extend(sidecar["episodes"])
                os.replace(task.path, self.data_path / os.path.basename(task.path))
            episode_index[split] = {
                "episode_ids": [e for e, _ in entries],
                "num_segments": [n for _, n in entries],
            }
            split_infos.append(
                tfds.core.SplitInfo(
                    name=split,
                    shard_lengths=shard_lengths,
                    num_bytes=num_bytes,
                    filename_template=self._get_filename_template(split),
                )
            )
        (self.data_path / EPISODE_INDEX_FILENAME).write_text(
            json.dumps({"segment_length": layout.segment_length, "splits": episode_index})
        )
        self.info.set_splits(tfds.core.SplitDict(split_infos))
        shutil.rmtree(staging)
        for parent in staging.parents:  # drop the now empty <name>/<config> folders
            if parent == self.data_dir_root or any(parent.iterdir()):
                break
            parent.rmdir()


def read_episode_index(data_path: epath.PathLike) -> dict:
    """Reads `episode_index.json` of a built dataset: segment_length and per-split episodes."""
    path = epath.Path(data_path) / EPISODE_INDEX_FILENAME
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: the dataset at {data_path} was not built by an "
            "EpisodeDatasetBuilder (or the build did not finish)"
        )
    return json.loads(path.read_text())
