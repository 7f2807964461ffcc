"""grain pipelines: windows read the right frames, are a pure function of (seed, step, slot),
shard across processes, resume exactly; TBPTT streams tile episodes with start flags."""

import collections

import numpy as np
import pytest
import toy_episode_builder as toy

from lssvwm.data import pipeline, sources

LENGTH = 12  # toy episodes: 5 train episodes of 12 frames in segments of 4


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    builder = toy.ToyEpisodes(data_dir=tmp_path_factory.mktemp("toy"), num_workers=0)
    builder.download_and_prepare()
    return sources.SegmentSource(builder, "train", fields=("frames", "actions", "position"))


def _reference(episode, start, length):
    full = toy.ToySource(length=LENGTH)("train", episode)
    return {k: full[k][start : start + length] for k in ("frames", "actions", "position")}


def test_read_window_matches_the_episode_for_every_start(source):
    for length in (1, 3, 4, 6, 12):
        for episode in range(5):
            for start in range(LENGTH - length + 1):
                window = pipeline.read_window(source, episode, start, length)
                for name, expected in _reference(episode, start, length).items():
                    np.testing.assert_array_equal(window[name], expected)
                assert window["episode_id"] == episode and window["start_frame"] == start
    with pytest.raises(ValueError, match="outside episode"):
        pipeline.read_window(source, 0, 10, 3)


def test_depth_is_read_only_when_asked(source):
    batch = pipeline.training_batch(source, 5, 2, seed=0, step=0)
    assert set(batch) == {"frames", "actions", "position", "episode_id", "start_frame"}
    assert batch["frames"].shape == (2, 5, 4, 5, 3)


def test_windows_are_a_pure_function_of_seed_step_slot(source):
    a = pipeline.training_batch(source, 5, 4, seed=3, step=10)
    b = pipeline.training_batch(source, 5, 4, seed=3, step=10)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    c = pipeline.training_batch(source, 5, 4, seed=3, step=11)
    d = pipeline.training_batch(source, 5, 4, seed=4, step=10)
    assert not np.array_equal(a["frames"], c["frames"])
    assert not np.array_equal(a["frames"], d["frames"])
    for i in range(4):  # each window is what it claims to be
        ref = _reference(int(a["episode_id"][i]), int(a["start_frame"][i]), 5)
        np.testing.assert_array_equal(a["frames"][i], ref["frames"])


def test_process_shards_partition_the_global_batch(source):
    whole = pipeline.training_batch(source, 5, 6, seed=1, step=7)
    parts = [
        pipeline.training_batch(source, 5, 6, seed=1, step=7, process_index=p, process_count=3)
        for p in range(3)
    ]
    for key in whole:
        np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), whole[key])
    with pytest.raises(ValueError, match="must divide by process_count"):
        pipeline.training_batch(source, 5, 4, seed=1, step=0, process_count=3)


def test_windows_cover_all_starts_uniformly(source):
    counts = collections.Counter(
        pipeline.sample_window(source.index, 9, seed=0, step=step, slot=0) for step in range(2000)
    )
    assert len(counts) == 5 * (LENGTH - 9 + 1)  # every (episode, start) occurs
    assert max(counts.values()) < 3 * min(counts.values())
    with pytest.raises(ValueError, match="longer than every episode"):
        pipeline.sample_window(source.index, 13, 0, 0, 0)


def test_training_iterator_resumes_exactly(source):
    kwargs = dict(window_length=6, batch_size=2, seed=5)
    iterator = pipeline.TrainingWindows(source, **kwargs)
    first = [next(iterator) for _ in range(3)]
    assert iterator.get_state() == {"step": 3}
    for step, batch in enumerate(first):
        expected = pipeline.training_batch(source, 6, 2, seed=5, step=step)
        np.testing.assert_array_equal(batch["frames"], expected["frames"])
    later = [next(iterator) for _ in range(2)]
    resumed = pipeline.TrainingWindows(source, **kwargs)
    resumed.set_state({"step": 3})
    for batch in later:
        np.testing.assert_array_equal(next(resumed)["frames"], batch["frames"])
    restarted = pipeline.TrainingWindows(source, **kwargs, start_step=4)
    np.testing.assert_array_equal(next(restarted)["frames"], later[1]["frames"])
    with pytest.raises(KeyError, match="'step'"):
        resumed.set_state({"next_index": 0})


def test_stream_tiles_episodes_with_start_flags(source):
    window, batch = 4, 2
    stream = pipeline.ConsecutiveWindows(source, window_length=window, batch_size=batch, seed=2)
    per_episode = LENGTH // window
    seen = collections.defaultdict(list)
    for step in range(per_episode * 5):  # 5 rounds x 2 slots = 10 episode visits = 2 epochs
        out = next(stream)
        assert out["frames"].shape == (batch, window, 4, 5, 3)
        for slot in range(batch):
            start = int(out["start_frame"][slot])
            assert start == (step % per_episode) * window
            assert out["episode_start"][slot] == (start == 0)
            np.testing.assert_array_equal(out["is_first"][slot], np.arange(window) + start == 0)
            ref = _reference(int(out["episode_id"][slot]), start, window)
            np.testing.assert_array_equal(out["frames"][slot], ref["frames"])
            if start == 0:
                seen[step // per_episode].append(int(out["episode_id"][slot]))
    visits = [e for r in range(5) for e in seen[r]]
    assert sorted(visits[:5]) == list(range(5)) and sorted(visits[5:]) == list(range(5))
    assert stream.get_state() == {"step": per_episode * 5}


def test_stream_requires_equal_length_episodes():
    ragged = sources.EpisodeIndex(
        episode_ids=np.arange(2),
        num_segments=np.array([3, 2]),
        first_record=np.array([0, 3]),
        segment_length=4,
    )
    with pytest.raises(ValueError, match="equal-length episodes"):
        pipeline.stream_window(ragged, 4, 2, 0, 0, 0)
    assert pipeline.sample_window(ragged, 9, 0, 0, 0)[0] == 0  # only episode 0 fits 9 frames


def test_fixed_windows_are_deterministic(source):
    a = pipeline.fixed_windows(source, 5, 3, seed=0)
    b = pipeline.fixed_windows(source, 5, 3, seed=0)
    np.testing.assert_array_equal(a["frames"], b["frames"])
    assert a["frames"].shape == (3, 5, 4, 5, 3)
