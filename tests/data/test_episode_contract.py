"""The episode field contract: validation names the field, segmenting round-trips."""

import numpy as np
import pytest
from toy_episode_builder import ToySource

from lssvwm.data import episodes


def _episode(length=12):
    return ToySource(length=length)("train", 3)


def test_valid_episode_passes_and_length():
    episode = _episode()
    episodes.validate_episode(episode)
    assert episodes.episode_length(episode) == 12


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda e: e.pop("depth"), "missing field(s) ['depth']"),
        (lambda e: e.update(extra=np.zeros(3)), "unexpected field(s) ['extra']"),
        (lambda e: e.update(frames=e["frames"].astype(np.float32)), "'frames' has dtype float32"),
        (lambda e: e.update(actions=e["actions"].astype(np.int64)), "'actions' has dtype int64"),
        (lambda e: e.update(depth=e["depth"][..., None]), "'depth' has shape"),
        (lambda e: e.update(frames=e["frames"][..., :2]), "axis 3 must be 3"),
        (lambda e: e.update(actions=e["actions"][:-1]), "'actions' has length T = 11"),
        (lambda e: e.update(depth=e["depth"][:, :, :-1]), "'depth' has size W = 4"),
        (lambda e: e.update(position=e["position"].tolist()), "'position' must be a numpy array"),
        (lambda e: e.update(intrinsics=np.eye(4, dtype=np.float32)), "'intrinsics' has shape"),
        (lambda e: e["depth"].__setitem__((0, 0, 0), -1.0), "'depth' must be > 0"),
        (lambda e: e["position"].__setitem__((0, 0), np.nan), "'position' contains NaN"),
        (lambda e: e["camera_to_world"].__setitem__((0, 3, 0), 1.0), "last row"),
    ],
)
def test_validation_names_the_field(mutate, message):
    episode = _episode()
    mutate(episode)
    with pytest.raises(episodes.EpisodeError) as info:
        episodes.validate_episode(episode, where="file.npz")
    assert message in str(info.value)
    assert str(info.value).startswith("file.npz: ")


def test_validation_of_a_field_subset():
    episode = {k: v for k, v in _episode().items() if k in ("frames", "actions")}
    episodes.validate_episode(episode, fields=("frames", "actions"))
    with pytest.raises(episodes.EpisodeError, match="lacks required field 'actions'"):
        episodes.validate_episode(episode, fields=("frames",))
    with pytest.raises(episodes.EpisodeError, match="unknown field"):
        episodes.validate_episode(episode, fields=("frames", "actions", "rgb"))


def test_infinite_depth_is_sky_not_an_error():
    episode = _episode()
    episode["depth"][:, 0, :] = np.inf
    episodes.validate_episode(episode)


def test_segments_round_trip():
    episode = _episode(length=12)
    records = episodes.split_into_segments(episode, 4, episode_id=7)
    assert [int(r["segment_index"]) for r in records] == [0, 1, 2]
    assert all(int(r["episode_id"]) == 7 for r in records)
    assert records[1]["frames"].shape == (4, 4, 5, 3)
    np.testing.assert_array_equal(records[2]["actions"], episode["actions"][8:12])
    np.testing.assert_array_equal(records[1]["intrinsics"], episode["intrinsics"])
    joined = episodes.join_segments(records)
    assert joined.keys() == episode.keys()
    for name in episode:
        np.testing.assert_array_equal(joined[name], episode[name])


def test_segment_remainder():
    episode = _episode(length=10)
    with pytest.raises(episodes.EpisodeError, match="not a multiple of segment_length 4"):
        episodes.split_into_segments(episode, 4, episode_id=0)
    records = episodes.split_into_segments(episode, 4, episode_id=0, drop_remainder=True)
    assert len(records) == 2
    with pytest.raises(ValueError, match="not consecutive"):
        episodes.join_segments([records[1], records[0]])
