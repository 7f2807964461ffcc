"""video_folder: npz/mp4 folders build and read back; bad files fail naming the file."""

import os

import ml_collections
import numpy as np
import pytest
from toy_episode_builder import ToySource

from lssvwm.data import episodes, sources, video_folder


def _write_npz(path, length, *, height=4, width=5, seed=0, geometry=False, **overrides):
    episode = ToySource(length=length, height=height, width=width)("train", seed)
    arrays = {"video": episode["frames"], "actions": episode["actions"].astype(np.int64)}
    if geometry:
        arrays.update({k: episode[k] for k in episodes.GEOMETRY_FIELDS})
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return episode


def _config(path, data_dir, **params):
    return ml_collections.ConfigDict(
        {
            "dataset": "video_folder",
            "data_dir": str(data_dir),
            "num_workers": 0,
            "video_folder": {**video_folder.default_params(str(path)), **params},
        }
    )


def test_npz_folder_round_trip(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    lengths = {"a.npz": 20, "b.npz": 33, "c.npz": 16}
    written = {
        name: _write_npz(folder / name, n, seed=i, geometry=True)
        for i, (name, n) in enumerate(lengths.items())
    }
    config = _config(folder, tmp_path / "tfds", segment_length=8, test_episodes=1)
    config.video_folder.fields = ["frames", "actions", "depth", "camera_to_world"]
    builder = sources.get_builder(config)
    train = sources.SegmentSource(builder, "train", fields=("frames", "actions", "depth"))
    np.testing.assert_array_equal(train.index.num_segments, [2, 4])  # 20 -> 16, 33 -> 32 frames
    episode = sources.read_episode(train, 1)
    np.testing.assert_array_equal(episode["frames"], written["b.npz"]["frames"][:32])
    np.testing.assert_array_equal(episode["actions"], written["b.npz"]["actions"][:32])
    np.testing.assert_array_equal(episode["depth"], written["b.npz"]["depth"][:32])
    test = sources.SegmentSource(builder, "test", fields=("frames",))
    np.testing.assert_array_equal(
        sources.read_episode(test, 0)["frames"], written["c.npz"]["frames"]
    )
    assert builder.episode_files()["test"] == [str(folder / "c.npz")]


def test_changing_the_folder_changes_the_config_name(tmp_path):
    _write_npz(tmp_path / "a.npz", 16)
    _write_npz(tmp_path / "b.npz", 16)
    before = video_folder.VideoFolder.from_config(_config(tmp_path, tmp_path / "tfds"))
    _write_npz(tmp_path / "c.npz", 16)
    after = video_folder.VideoFolder.from_config(_config(tmp_path, tmp_path / "tfds"))
    assert before.builder_config.name != after.builder_config.name
    assert before.builder_config.name.startswith(os.path.basename(tmp_path)[:10])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(actions=None), r"bad\.npz: missing array\(s\) \['actions'\]"),
        (dict(video=None), r"bad\.npz: missing array\(s\) \['video'\]"),
        (dict(video=np.zeros((16, 4, 5, 3), np.float32)), r"bad\.npz: field 'frames' has dtype"),
        (dict(actions=np.zeros(16, np.float32)), r"bad\.npz: field 'actions' has dtype float32"),
        (dict(actions=np.zeros(15, np.int32)), r"bad\.npz: field 'actions' has length T = 15"),
        (dict(video=np.zeros((16, 6, 5, 3), np.uint8)), r"bad\.npz: frames are 6x5 but"),
        (
            dict(video=np.zeros((4, 4, 5, 3), np.uint8), actions=np.zeros(4, np.int32)),
            r"bad\.npz: 4 frames, fewer than one segment \(8\)",
        ),
    ],
)
def test_bad_files_are_reported_by_name(tmp_path, overrides, message):
    folder = tmp_path / "videos"
    folder.mkdir()
    _write_npz(folder / "a_good.npz", 16)
    _write_npz(folder / "bad.npz", 16, **overrides)
    with pytest.raises(episodes.EpisodeError, match=message):
        sources.get_builder(_config(folder, tmp_path / "tfds", segment_length=8))


def test_configuration_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no .npz or .mp4 files"):
        video_folder.VideoFolder.from_config(_config(tmp_path, tmp_path))
    _write_npz(tmp_path / "a.npz", 16)
    with pytest.raises(ValueError, match="data.video_folder.fps is unknown"):
        video_folder.VideoFolder.builder_config_for({"path": str(tmp_path), "fps": 3})
    with pytest.raises(ValueError, match="test_episodes must be in"):
        video_folder.VideoFolder.from_config(_config(tmp_path, tmp_path, test_episodes=1))
    config = _config(tmp_path, tmp_path)
    config.video_folder.fields = ["frames", "actions", "depth"]
    with pytest.raises(episodes.EpisodeError, match=r"a\.npz: missing array\(s\) \['depth'\]"):
        video_folder.VideoFolder.from_config(config)


def test_mp4_with_actions_sidecar(tmp_path):
    iio = pytest.importorskip("imageio.v3", reason="the `video` extra (imageio) is not installed")
    pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg is not installed")
    frames = np.zeros((16, 16, 16, 3), np.uint8)
    frames[:] = (np.arange(16) * 12)[:, None, None, None]  # flat frames survive H.264 well
    iio.imwrite(tmp_path / "clip.mp4", frames, fps=10, codec="libx264", plugin="FFMPEG")
    np.savez(tmp_path / "clip.npz", actions=np.arange(16, dtype=np.int16))
    builder = sources.get_builder(_config(tmp_path, tmp_path / "tfds", segment_length=8))
    episode = sources.read_episode(sources.SegmentSource(builder, "train"), 0)
    assert episode["frames"].shape == (16, 16, 16, 3)
    assert np.abs(episode["frames"].astype(int) - frames).max() <= 3
    np.testing.assert_array_equal(episode["actions"], np.arange(16))
    os.remove(tmp_path / "clip.npz")
    with pytest.raises(episodes.EpisodeError, match=r"clip\.mp4: no sidecar clip\.npz"):
        video_folder.VideoFolder.from_config(_config(tmp_path, tmp_path / "tfds2"))
