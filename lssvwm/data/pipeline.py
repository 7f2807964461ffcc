"""grain input pipelines over episode datasets: random training windows and TBPTT streams.

Both read a `lssvwm.data.sources.SegmentSource` (one split of a built TFDS dataset, only the
fields asked for; depth only when asked) and yield dicts of numpy arrays per process:

  <field>        [B, W, ...] per-frame fields of B windows of W consecutive frames
  intrinsics     [B, 3, 3]   (when read)
  episode_id     int32 [B]   the stored episode each window comes from
  start_frame    int32 [B]   its first frame within that episode
  (streams only)
  episode_start  bool [B]    the window starts an episode (reset carried state here)
  is_first       bool [B, W] True at an episode's frame 0 (the SSD `reset` mask)

Which window lands in which batch slot is a pure function of (seed, step, slot), where slot is
the position in the *global* batch: process p of P reads slots [p * B/P, (p + 1) * B/P).
So resuming at step s reproduces the batches exactly, a curriculum can change the window length
or batch size at any step, and processes never read the same window. A window may span several
stored segments of its episode (only those segments are read) but never two episodes.

Length curricula: both iterators take `stages=((start_step, window_length, batch_size), ...)`
instead of one window length and batch size (see lssvwm.training.curriculum). Random windows
simply use the stage's shape at each step. A TBPTT stream restarts every slot at a fresh episode
when a stage begins (the stage's windows tile episodes with its own length), so windows never
straddle an episode boundary or a length change, and a slot's position stays a pure function of
the step: episodes left unfinished by a stage are not resumed, and the episode permutation goes
on where the previous stage stopped.

The iterators run on grain (`MapDataset.range(steps).map(batch_at).to_iter_dataset(...)`, read
ahead by a few threads) and keep their position as a small checkpointable dict,
`{"step": int}` (`get_state` / `set_state`), to save beside the model.

Public API: sample_window, read_window, training_batch, TrainingWindows,
            stream_window, staged_stream_window, ConsecutiveWindows, fixed_windows
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence

import grain
import numpy as np

from lssvwm.data import episodes as episodes_lib
from lssvwm.data.sources import EpisodeIndex, SegmentSource

_MAX_STEPS = 2**40  # "infinite": grain datasets have a length


def _rng(seed: int, step: int, slot: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream, step, slot]))


def sample_window(
    index: EpisodeIndex, window_length: int, seed: int, step: int, slot: int
) -> tuple[int, int]:
    """(stored episode e, start frame) of the training window for (seed, step, slot).

    Uniform over all windows of the split that fit inside one episode.
    """
    return _draw_window(index, window_length, _rng(seed, step, slot, stream=0))


def _draw_window(
    index: EpisodeIndex, window_length: int, rng: np.random.Generator
) -> tuple[int, int]:
    starts = np.maximum(index.episode_frames() - window_length + 1, 0)
    total = int(starts.sum())
    if total == 0:
        raise ValueError(
            f"window_length {window_length} is longer than every episode "
            f"(longest: {int(index.episode_frames().max())} frames)"
        )
    k = int(rng.integers(total))
    episode = int(np.searchsorted(np.cumsum(starts), k, side="right"))
    start = k - int(starts[:episode].sum())
    return episode, start


def read_window(source: SegmentSource, episode: int, start: int, length: int) -> dict:
    """Frames [start, start + length) of stored episode `episode`, reading only their segments."""
    index = source.index
    frames = int(index.episode_frames()[episode])
    if start < 0 or start + length > frames:
        raise ValueError(f"window [{start}, {start + length}) outside episode of {frames} frames")
    size = index.segment_length
    first, last = start // size, (start + length - 1) // size
    records = source.__getitems__([index.record(episode, k) for k in range(first, last + 1)])
    window = {}
    offset = start - first * size
    for name in source.fields:
        if episodes_lib.EPISODE_FIELDS[name].per_frame:
            joined = np.concatenate([r[name] for r in records], axis=0)
            window[name] = joined[offset : offset + length]
        else:
            window[name] = records[0][name]
    window["episode_id"] = np.int32(index.episode_ids[episode])
    window["start_frame"] = np.int32(start)
    return window


def _stack(windows: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.stack([w[name] for w in windows]) for name in windows[0]}


def _local_slots(batch_size: int, process_index: int, process_count: int) -> range:
    if batch_size % process_count:
        raise ValueError(
            f"global batch_size {batch_size} must divide by process_count {process_count}"
        )
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    local = batch_size // process_count
    return range(process_index * local, (process_index + 1) * local)


Stages = tuple[tuple[int, int, int], ...]  # ((start_step, window_length, batch_size), ...)


def _resolve_stages(stages, window_length, batch_size) -> Stages:
    """Validated stages from either `stages` or one (window_length, batch_size)."""
    if stages is None:
        if window_length is None or batch_size is None:
            raise ValueError("give window_length and batch_size, or stages")
        stages = ((0, window_length, batch_size),)
    elif window_length is not None or batch_size is not None:
        raise ValueError("give either stages or window_length and batch_size, not both")
    stages = tuple((int(a), int(b), int(c)) for a, b, c in stages)
    if not stages or stages[0][0] != 0:
        raise ValueError(f"stages must start at step 0, got {stages}")
    for (start, _, _), (next_start, _, _) in zip(stages, stages[1:], strict=False):
        if next_start <= start:
            raise ValueError(f"stage start steps must increase, got {stages}")
    for _, length, batch in stages:
        if length < 1 or batch < 1:
            raise ValueError(f"stage window lengths and batch sizes must be >= 1, got {stages}")
    return stages


def _stage_index(stages: Stages, step: int) -> int:
    return bisect.bisect_right([start for start, _, _ in stages], step) - 1


def training_batch(
    source: SegmentSource,
    window_length: int,
    batch_size: int,
    seed: int,
    step: int,
    *,
    process_index: int = 0,
    process_count: int = 1,
) -> dict[str, np.ndarray]:
    """This process's share of the global batch at `step` (random windows)."""
    windows = []
    for slot in _local_slots(batch_size, process_index, process_count):
        episode, start = sample_window(source.index, window_length, seed, step, slot)
        windows.append(read_window(source, episode, start, window_length))
    return _stack(windows)


class _StepIterator:
    """A grain iterator over `batch_at(step)` with a `{"step": int}` state."""

    def __init__(self, batch_at, start_step: int, num_threads: int, prefetch: int):
        self._dataset = (
            grain.MapDataset.range(_MAX_STEPS)
            .map(batch_at)
            .to_iter_dataset(
                grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)
            )
        )
        self._iterator = iter(self._dataset)
        self.set_state({"step": start_step})

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        return next(self._iterator)

    def get_state(self) -> dict[str, int]:
        """The step of the next batch; restoring it with `set_state` resumes exactly."""
        return {"step": int(self._iterator.get_state()["next_index"])}

    def set_state(self, state: Mapping[str, int]) -> None:
        if "step" not in state:
            raise KeyError(f"pipeline state needs a 'step' entry, got {dict(state)}")
        self._iterator.set_state({"next_index": int(state["step"])})


class TrainingWindows(_StepIterator):
    """Infinite iterator of random-window batches, `training_batch` at step 0, 1, 2, ...

    With `stages` (a length curriculum) instead of `window_length`/`batch_size`, step s uses the
    shape of the stage that contains s.
    """

    def __init__(
        self,
        source: SegmentSource,
        *,
        window_length: int | None = None,
        batch_size: int | None = None,
        seed: int,
        stages: Sequence[tuple[int, int, int]] | None = None,
        process_index: int = 0,
        process_count: int = 1,
        start_step: int = 0,
        num_threads: int = 2,
        prefetch: int = 2,
    ):
        stages = _resolve_stages(stages, window_length, batch_size)
        for _, length, batch in stages:  # validate every stage early
            _local_slots(batch, process_index, process_count)
            sample_window(source.index, length, seed, 0, 0)

        def batch_at(step: int) -> dict[str, np.ndarray]:
            _, length, batch = stages[_stage_index(stages, step)]
            return training_batch(
                source,
                length,
                batch,
                seed,
                step,
                process_index=process_index,
                process_count=process_count,
            )

        super().__init__(batch_at, start_step, num_threads, prefetch)


def stream_window(
    index: EpisodeIndex, window_length: int, batch_size: int, seed: int, step: int, slot: int
) -> tuple[int, int]:
    """(stored episode, start frame) of slot `slot`'s window at `step` in a TBPTT stream.

    Every slot walks whole episodes window by window; all slots start a new episode at the
    same steps (episodes have equal length). Episodes are dealt to (round, slot) pairs from
    a fresh permutation per epoch, so each epoch uses each episode once.
    """
    episode, start, _ = staged_stream_window(
        index, ((0, window_length, batch_size),), seed, step, slot
    )
    return episode, start


def staged_stream_window(
    index: EpisodeIndex, stages: Sequence[tuple[int, int, int]], seed: int, step: int, slot: int
) -> tuple[int, int, int]:
    """(stored episode, start frame, window length) of slot `slot` at `step` of a TBPTT stream
    whose window length and batch size change at stage starts (`stages` as in the module
    docstring).

    Within a stage this is `stream_window` with the stage's length and batch, its steps counted
    from the stage start. A stage begins with every slot at frame 0 of a fresh episode, dealt
    from the same epoch permutations, after the episodes the earlier stages took (a round cut
    short by the stage change still counts as taken).
    """
    stages = _resolve_stages(stages, None, None)
    frames = index.episode_frames()
    if not (frames == frames[0]).all():
        raise ValueError(
            "TBPTT streams need equal-length episodes so that windows tile them; "
            f"lengths here range over {sorted(set(frames.tolist()))[:5]}..."
        )
    k = _stage_index(stages, step)
    dealt = 0  # episodes dealt to the stages before k
    for (start, length, batch), (next_start, _, _) in zip(
        stages[:k], stages[1 : k + 1], strict=True
    ):
        dealt += -(-(next_start - start) // _windows_per_episode(frames[0], length)) * batch
    start_step, window_length, batch_size = stages[k]
    if not 0 <= slot < batch_size:
        raise ValueError(f"slot {slot} is not in [0, {batch_size}) at step {step}")
    per_episode = _windows_per_episode(frames[0], window_length)
    round_, window = divmod(step - start_step, per_episode)
    flat = dealt + round_ * batch_size + slot
    epoch, position = divmod(flat, index.num_episodes)
    permutation = _rng(seed, epoch, 0, stream=1).permutation(index.num_episodes)
    return int(permutation[position]), window * window_length, window_length


def _windows_per_episode(episode_frames: int, window_length: int) -> int:
    per_episode = int(episode_frames) // window_length
    if per_episode < 1:
        raise ValueError(
            f"window_length {window_length} exceeds the episode length {episode_frames}"
        )
    return per_episode


class ConsecutiveWindows(_StepIterator):
    """Infinite iterator of TBPTT batches: each slot's consecutive windows of its episodes.

    Batches carry `episode_start [B]` and `is_first [B, W]` so a trainer resets carried state
    where an episode begins; windows never straddle two episodes, so `is_first` is true at most
    on a window's frame 0. Frames after the last whole window of an episode are skipped. With
    `stages` (a length curriculum), see `staged_stream_window`.
    """

    def __init__(
        self,
        source: SegmentSource,
        *,
        window_length: int | None = None,
        batch_size: int | None = None,
        seed: int,
        stages: Sequence[tuple[int, int, int]] | None = None,
        process_index: int = 0,
        process_count: int = 1,
        start_step: int = 0,
        num_threads: int = 2,
        prefetch: int = 2,
    ):
        stages = _resolve_stages(stages, window_length, batch_size)
        for start, _, batch in stages:  # validate every stage early
            _local_slots(batch, process_index, process_count)
            staged_stream_window(source.index, stages, seed, start, 0)

        def batch_at(step: int) -> dict[str, np.ndarray]:
            _, _, batch = stages[_stage_index(stages, step)]
            windows = []
            for slot in _local_slots(batch, process_index, process_count):
                episode, start, length = staged_stream_window(
                    source.index, stages, seed, step, slot
                )
                window = read_window(source, episode, start, length)
                window["episode_start"] = np.bool_(start == 0)
                window["is_first"] = np.arange(start, start + length) == 0
                windows.append(window)
            return _stack(windows)

        super().__init__(batch_at, start_step, num_threads, prefetch)


def fixed_windows(
    source: SegmentSource, window_length: int, count: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """`count` deterministic windows (a held-out evaluation batch), independent of training."""
    windows = []
    for slot in range(count):
        episode, start = _draw_window(source.index, window_length, _rng(seed, 0, slot, stream=2))
        windows.append(read_window(source, episode, start, window_length))
    return _stack(windows)
