"""The shared TFDS layer: parallel build == sequential reference, resume, reading without TF."""

import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
import toy_episode_builder as toy

from lssvwm.data import episodes, sources, tfds_common


def _records_equal(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)


@pytest.fixture(scope="module")
def built_parallel(tmp_path_factory):
    builder = toy.ToyEpisodes(data_dir=tmp_path_factory.mktemp("toy"), num_workers=2)
    builder.download_and_prepare()
    return builder


def test_parallel_build_matches_sequential_reference(built_parallel):
    builder = built_parallel
    assert builder.info.splits["train"].num_examples == 5 * 3
    assert builder.info.splits["train"].num_shards == 3  # 2 episodes per shard
    assert builder.info.splits["test"].num_examples == 2 * 3
    for split in ("train", "test"):
        source = sources.SegmentSource(builder, split, fields=episodes.ALL_FIELDS)
        reference = [record for _, record in builder._generate_examples(split=split)]
        assert len(source) == len(reference)
        for i, expected in enumerate(reference):
            _records_equal(source[i], expected)
    # No staging leftovers once the build is complete.
    assert not (builder.data_dir_root / "_lssvwm_partial").exists()


def test_episode_index_and_read_episode(built_parallel):
    source = sources.SegmentSource(built_parallel, "train", fields=("frames", "depth", "actions"))
    index = source.index
    np.testing.assert_array_equal(index.episode_ids, np.arange(5))
    np.testing.assert_array_equal(index.first_record, [0, 3, 6, 9, 12])
    assert index.record(2, 1) == 7
    with pytest.raises(IndexError):
        index.record(2, 3)
    episode = sources.read_episode(source, 4)
    expected = toy.ToySource(length=12)("train", 4)
    for name in ("frames", "depth", "actions"):
        np.testing.assert_array_equal(episode[name], expected[name])
    assert source[0]["episode_id"].dtype == np.int32


def test_reads_only_requested_fields_and_validates_names(built_parallel):
    source = sources.SegmentSource(built_parallel, "train", fields=("frames", "actions"))
    assert set(source[0]) == {"episode_id", "segment_index", "frames", "actions"}
    default = sources.SegmentSource(built_parallel, "train")
    assert "depth" not in default.fields  # depth only when asked
    with pytest.raises(ValueError, match="does not store field"):
        sources.SegmentSource(built_parallel, "train", fields=("frames", "rgb"))
    with pytest.raises(ValueError, match="split 'validation' not in"):
        sources.SegmentSource(built_parallel, "validation")


def test_plain_tfds_reads_it_without_tensorflow(built_parallel):
    restored = tfds.builder_from_directory(built_parallel.data_path)
    data_source = restored.as_data_source(split="test")
    record = data_source[4]
    assert record["frames"].shape == (4, 4, 5, 3)
    assert int(record["episode_id"]) == 1 and int(record["segment_index"]) == 1
    assert "tensorflow" not in sys.modules


def test_build_resumes_after_a_crash(tmp_path):
    toy.GENERATED.clear()
    toy.FAIL_AT = 3  # shards hold 2 episodes: shard 0 (episodes 0, 1) completes, shard 1 fails
    try:
        with pytest.raises(RuntimeError, match="simulated crash at episode 3"):
            toy.FlakyToyEpisodes(data_dir=tmp_path, num_workers=0).download_and_prepare()
    finally:
        toy.FAIL_AT = None
    assert toy.GENERATED == [("train", 0), ("train", 1), ("train", 2)]
    toy.GENERATED.clear()
    builder = toy.FlakyToyEpisodes(data_dir=tmp_path, num_workers=0)
    builder.download_and_prepare()
    # Shard 0 was reused; the half-written shard 1 was redone.
    assert toy.GENERATED == [("train", 2), ("train", 3), ("train", 4), ("test", 0), ("test", 1)]
    source = sources.SegmentSource(builder, "train", fields=episodes.ALL_FIELDS)
    reference = [record for _, record in builder._generate_examples(split="train")]
    for i, expected in enumerate(reference):
        _records_equal(source[i], expected)


def test_bad_episodes_fail_the_build_with_the_field_name(tmp_path):
    class BadSource(toy.ToySource):
        def __call__(self, split, index):
            episode = super().__call__(split, index)
            episode["actions"] = episode["actions"].astype(np.float32)
            return episode

    class BadToy(toy.ToyEpisodes, skip_registration=True):
        def episode_source(self):
            return BadSource(length=12)

    with pytest.raises(episodes.EpisodeError, match="train episode 0: field 'actions' has dtype"):
        BadToy(data_dir=tmp_path, num_workers=0).download_and_prepare()


def test_from_config_names_presets_and_custom_params(tmp_path):
    import ml_collections

    params = dict(toy.ToyEpisodes.BUILDER_CONFIGS[0].params)
    data = ml_collections.ConfigDict(
        {"dataset": "toy", "data_dir": str(tmp_path), "toy_episodes": params}
    )
    assert toy.ToyEpisodes.from_config(data).builder_config.name == "default"
    data.toy_episodes.length = 8
    custom = toy.ToyEpisodes.from_config(data).builder_config
    assert custom.name.startswith("custom_") and custom.params["length"] == 8
    assert custom.name == tfds_common.config_name_for(custom.params)
    with pytest.raises(KeyError, match="no section 'toy_episodes'"):
        toy.ToyEpisodes.from_config(ml_collections.ConfigDict({"dataset": "toy"}))


def test_worker_errors_surface_and_finished_shards_are_kept(tmp_path):
    builder = toy.FailingToyEpisodes(data_dir=tmp_path, num_workers=2)
    with pytest.raises(ValueError, match="episode 3 is broken"):
        builder.download_and_prepare()
    staged = sorted(p.name for p in builder.staging_path().iterdir())
    # Shard 1 (episodes 2, 3) failed; the others finished and wait for the next attempt.
    prefix = "failing_toy_episodes-train.array_record"
    assert f"{prefix}-00000-of-00003.index.json" in staged
    assert f"{prefix}-00001-of-00003.index.json" not in staged
    assert not any(".tmp" in name for name in staged)
    assert not builder.data_path.exists()


def test_open_split_uses_the_config_fields(tmp_path):
    import ml_collections

    data = ml_collections.ConfigDict(
        {
            "dataset": "maze3d",
            "data_dir": str(tmp_path),
            "num_workers": 0,
            "fields": ("frames", "depth"),
            "train_split": "test",
            "maze3d": dict(
                height=8,
                width=8,
                maze_rows=2,
                maze_cols=2,
                episode_length=16,
                segment_length=8,
                train_episodes=1,
                test_episodes=1,
                reasoning_episodes=0,
            ),
        }
    )
    source = sources.open_split(data)
    assert source.split == "test" and source.fields == ("frames", "depth")
    assert source[0]["depth"].shape == (8, 8, 8)
