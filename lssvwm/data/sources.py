"""Reading built episode datasets: builder lookup, a segment data source and the episode index.

  DATASET_BUILDERS                 name -> "module:Class" of the episode dataset builders
  builder_class(name)              imports and returns the builder class
  get_builder(data_config, ...)    the builder for a `data` ConfigDict, built on first use
  open_split(data_config, split)   get_builder + SegmentSource in one call
  EpisodeIndex                     (episode, segment) <-> record number, from episode_index.json
  SegmentSource                    grain-compatible random-access source of segment records,
                                   decoding only the requested fields (depth only when asked)
  read_episode(source, e)          the whole e-th episode of a split as an episode dict

A `data` ConfigDict (see `lssvwm.data.config`) has `dataset` (a DATASET_BUILDERS key),
`data_dir` (None: TFDS's default, `~/tensorflow_datasets`), `num_workers`, and a section named
after the dataset with its generation parameters (`data.maze3d`, `data.memory_maze`, ...).
Every builder class offers `from_config(data_config, **builder_kwargs)`.
"""

from __future__ import annotations

import dataclasses
import importlib
import operator
from collections.abc import Sequence

import numpy as np
from array_record.python import array_record_data_source
from tensorflow_datasets.core import example_parser

from lssvwm.data import episodes as episodes_lib
from lssvwm.data import tfds_common

DATASET_BUILDERS: dict[str, str] = {
    "maze3d": "lssvwm.data.maze3d:Maze3d",
    "memory_maze": "lssvwm.data.memory_maze:MemoryMaze",
    "video_folder": "lssvwm.data.video_folder:VideoFolder",
}

# Fields decoded when a reader does not say: everything a generator needs, not depth.
DEFAULT_READ_FIELDS: tuple[str, ...] = (
    "frames",
    "actions",
    "position",
    "camera_to_world",
    "intrinsics",
)


def builder_class(name: str) -> type[tfds_common.EpisodeDatasetBuilder]:
    """Returns the builder class registered under `name` (imported on demand)."""
    if name not in DATASET_BUILDERS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASET_BUILDERS)}")
    module_name, _, class_name = DATASET_BUILDERS[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def get_builder(data_config, *, build: bool = True, **builder_kwargs):
    """The builder for `data_config` (ConfigDict with `dataset`, `data_dir`, ...).

    With `build`, the dataset is generated into `data_dir` unless it is there already.
    """
    cls = builder_class(data_config.dataset)
    builder = cls.from_config(data_config, **builder_kwargs)
    if build:
        builder.download_and_prepare()
    return builder


def open_split(
    data_config, split: str | None = None, fields: Sequence[str] | None = None, **builder_kwargs
) -> SegmentSource:
    """A `SegmentSource` over `split` (default `data_config.train_split`) of the dataset,
    building it on first use; `fields` default to `data_config.fields` (else all but depth)."""
    builder = get_builder(data_config, **builder_kwargs)
    if split is None:
        split = data_config.get("train_split", "train")
    if fields is None and data_config.get("fields") is not None:
        fields = tuple(data_config.fields)
    return SegmentSource(builder, split, fields=fields)


@dataclasses.dataclass(frozen=True)
class EpisodeIndex:
    """Where each episode of a split lies in the split's records.

    Attributes:
      episode_ids: [E] the `episode_id` of the e-th stored episode (record order).
      num_segments: [E] its number of segment records.
      first_record: [E] record number of its segment 0.
      segment_length: frames per record.
    """

    episode_ids: np.ndarray
    num_segments: np.ndarray
    first_record: np.ndarray
    segment_length: int

    @classmethod
    def from_builder(cls, builder, split: str) -> EpisodeIndex:
        index = tfds_common.read_episode_index(builder.data_path)
        if split not in index["splits"]:
            raise ValueError(
                f"split {split!r} not in {builder.name} (splits: {sorted(index['splits'])})"
            )
        entry = index["splits"][split]
        num_segments = np.asarray(entry["num_segments"], np.int64)
        first_record = np.concatenate([[0], np.cumsum(num_segments)[:-1]]).astype(np.int64)
        return cls(
            episode_ids=np.asarray(entry["episode_ids"], np.int64),
            num_segments=num_segments,
            first_record=first_record,
            segment_length=int(index["segment_length"]),
        )

    @property
    def num_episodes(self) -> int:
        return len(self.episode_ids)

    @property
    def num_records(self) -> int:
        return int(self.num_segments.sum())

    def episode_frames(self) -> np.ndarray:
        """[E] frames stored per episode."""
        return self.num_segments * self.segment_length

    def record(self, episode: int, segment: int) -> int:
        """Record number of segment `segment` of the e-th stored episode."""
        if not 0 <= segment < self.num_segments[episode]:
            raise IndexError(
                f"episode {episode} has {self.num_segments[episode]} segments, asked {segment}"
            )
        return int(self.first_record[episode] + segment)


class SegmentSource:
    """Random-access source of one split's segment records (grain `RandomAccessDataSource`).

    `source[i]` is a dict with `episode_id`, `segment_index` and the requested `fields`, decoded
    to numpy. Fields not asked for are not decoded (their bytes are still read with the record).
    """

    def __init__(self, builder, split: str, fields: Sequence[str] | None = None):
        if split not in builder.info.splits:
            raise ValueError(
                f"split {split!r} not in {builder.name} (splits: {list(builder.info.splits)})"
            )
        stored = [n for n in builder.info.features if n not in episodes_lib.SEGMENT_ID_FIELDS]
        if fields is None:
            fields = [f for f in DEFAULT_READ_FIELDS if f in stored]
        missing = [f for f in fields if f not in stored]
        if missing:
            raise ValueError(f"{builder.name} does not store field(s) {missing}; it has {stored}")
        self.builder_name = builder.name
        self.split = split
        self.fields = tuple(fields)
        self.stored_fields = tuple(stored)
        self.index = EpisodeIndex.from_builder(builder, split)
        self._paths = [str(p) for p in builder.info.splits[split].filepaths]
        self._features = builder.info.features
        wanted = {k: self._features[k] for k in (*episodes_lib.SEGMENT_ID_FIELDS, *self.fields)}
        self._decoders = wanted
        self._parser = example_parser.ExampleParserNp(
            {k: f.get_serialized_info() for k, f in wanted.items()}
        )
        self._records = None  # opened lazily so that the source pickles into grain workers
        if len(self) != self.index.num_records:
            raise ValueError(
                f"{builder.name}/{split}: {len(self)} records but the episode index lists "
                f"{self.index.num_records}"
            )

    @property
    def segment_length(self) -> int:
        return self.index.segment_length

    def _reader(self):
        if self._records is None:
            self._records = array_record_data_source.ArrayRecordDataSource(self._paths)
        return self._records

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_records"] = None
        return state

    def __len__(self) -> int:
        return len(self._reader())

    def _decode(self, serialized: bytes) -> dict[str, np.ndarray]:
        parsed = self._parser.parse_example(serialized)
        # Scalars come back from the proto as int64; cast to the declared dtype.
        return {
            k: np.asarray(f.decode_example_np(parsed[k]), dtype=f.np_dtype)
            for k, f in self._decoders.items()
        }

    def __getitem__(self, record_key) -> dict[str, np.ndarray]:
        return self._decode(self._reader()[operator.index(record_key)])

    def __getitems__(self, record_keys: Sequence[int]) -> list[dict[str, np.ndarray]]:
        keys = [operator.index(k) for k in record_keys]
        return [self._decode(r) for r in self._reader().__getitems__(keys)]

    def __repr__(self) -> str:
        return f"SegmentSource({self.builder_name}/{self.split}, fields={self.fields})"


def read_episode(source: SegmentSource, episode: int) -> dict[str, np.ndarray]:
    """The e-th stored episode of `source`'s split (its decoded fields), joined."""
    index = source.index
    if not 0 <= episode < index.num_episodes:
        raise IndexError(f"episode {episode} out of range [0, {index.num_episodes})")
    first = int(index.first_record[episode])
    records = source.__getitems__(range(first, first + int(index.num_segments[episode])))
    return episodes_lib.join_segments(records)
