"""Rollout conditioning: path files (formats and errors) and the episode walked back and forth."""

import json

import numpy as np
import pytest

from lssvwm.data.maze_explorer import BACKWARD, FORWARD, INVERSE_ACTION, TURN_LEFT, TURN_RIGHT
from lssvwm.evaluation import paths


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".json"])
def test_files_round_trip(tmp_path, suffix):
    poses = np.array([[1.0, 2.0, 0.5], [1.5, 2.0, 0.5]], np.float32)
    actions = np.array([1, 2, 0, 4], np.int32)
    for kind, array in (("poses", poses), ("actions", actions)):
        path = tmp_path / f"{kind}{suffix}"
        if suffix == ".npy":
            np.save(path, array)
        elif suffix == ".npz":
            np.savez(path, **{kind: array, "other": np.zeros(3)})
        else:
            path.write_text(json.dumps({kind: array.tolist()}))
        loaded = paths.load_path_file(path, kind, num_actions=5)
        np.testing.assert_array_equal(loaded, array)
        assert loaded.dtype == array.dtype


def test_file_errors_name_the_problem(tmp_path):
    def write(name, value):
        path = tmp_path / name
        np.save(path, value) if name.endswith(".npy") else path.write_text(json.dumps(value))
        return path

    cases = [
        (write("a.npy", np.zeros((4, 2))), "poses", r"\[frames, 3\]"),
        (write("b.npy", np.array([[0, 0, np.nan]])), "poses", "finite"),
        (write("c.npy", np.array([0.5, 1.0])), "actions", "whole numbers"),
        (write("d.npy", np.array([0, 7])), "actions", r"action 7 at frame 1 is outside \[0, 5\)"),
        (write("e.npy", np.zeros((2, 2), np.int32)), "actions", r"\[frames\] integers"),
        (write("f.json", {"pose": [[0, 0, 0]]}), "actions", "expected one of"),
        (write("g.json", [[0, 0, 0], [1, 1]]), "poses", "rectangular"),
        (tmp_path / "missing.npy", "poses", "does not exist"),
    ]
    for path, kind, message in cases:
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            paths.load_path_file(path, kind, num_actions=5)
    (tmp_path / "h.txt").write_text("1 2 3")
    with pytest.raises(ValueError, match="unknown file type"):
        paths.load_path_file(tmp_path / "h.txt", "actions")


def test_triangle_index_walks_back_and_forth():
    np.testing.assert_array_equal(
        paths.triangle_index(np.arange(12), 4), [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1]
    )


def test_episode_path_inside_the_episode_is_the_episode():
    episode = {
        "actions": np.arange(10) % 5,
        "position": np.random.default_rng(0).uniform(size=(10, 3)),
    }
    plan = paths.episode_path(episode, "position", start=2, context=3, frames=4)
    np.testing.assert_array_equal(plan.context_index, [2, 3, 4])
    np.testing.assert_array_equal(plan.target_index, [5, 6, 7, 8])
    np.testing.assert_array_equal(plan.actions, episode["position"][5:9])
    assert not plan.reflected


def test_episode_path_reflects_with_inverse_actions():
    actions = np.array([0, FORWARD, TURN_LEFT, FORWARD, TURN_RIGHT], np.int32)
    episode = {"actions": actions, "position": np.random.default_rng(1).uniform(size=(5, 3))}
    plan = paths.episode_path(
        episode, "actions", start=0, context=3, frames=6, inverse_action=INVERSE_ACTION
    )
    # Stream frames 3..8 show episode frames 3, 4, 3, 2, 1, 0.
    np.testing.assert_array_equal(plan.target_index, [3, 4, 3, 2, 1, 0])
    # Forward: the episode's action; back from frame i to i - 1: the inverse of actions[i].
    expected = [FORWARD, TURN_RIGHT, TURN_LEFT, BACKWARD, TURN_RIGHT, BACKWARD]
    np.testing.assert_array_equal(plan.actions, expected)
    assert plan.reflected
    poses = paths.episode_path(episode, "position", start=0, context=3, frames=6)
    np.testing.assert_array_equal(poses.actions, episode["position"][[3, 4, 3, 2, 1, 0]])
    with pytest.raises(ValueError, match="cannot be walked back"):
        paths.episode_path(episode, "actions", start=0, context=3, frames=6)
    with pytest.raises(ValueError, match="does not fit the episode"):
        paths.episode_path(episode, "actions", start=3, context=3, frames=1)
