"""Frames since a view was last seen: coverage against a per-pixel loop, a hand-made
trajectory with known answers, and the retrieval property."""

import numpy as np
import pytest

from lssvwm.data import maze3d, maze_render
from lssvwm.evaluation import visibility

PARAMS = maze3d.Maze3dParams(
    height=12,
    width=16,
    maze_rows=5,
    maze_cols=5,
    num_colors=8,
    num_landmarks=3,
    episode_length=64,
    segment_length=32,
    train_episodes=1,
    test_episodes=0,
    reasoning_episodes=0,
)


@pytest.fixture(scope="module")
def episode_and_maze():
    return maze3d.generate_episode(PARAMS, "train", 0, with_maze=True)


def render_poses(maze, position):
    camera = PARAMS.camera()
    position = np.asarray(position, np.float32)
    _, depth = maze_render.render(maze, position, camera)
    return depth, maze_render.camera_to_world(position, camera.eye_height), camera.intrinsics()


def test_coverage_matches_the_per_pixel_reference(episode_and_maze):
    episode, _ = episode_and_maze
    depth, pose, K = episode["depth"], episode["camera_to_world"], episode["intrinsics"]
    depth = depth.copy()
    depth[50, :, :5] = np.inf  # a target with "sky": those pixels do not count
    targets, context = np.array([50, 55, 63]), np.array([0, 10, 20, 30, 45, 49])
    matrix = np.asarray(
        visibility.coverage_matrix(depth[targets], pose[targets], depth[context], pose[context], K)
    )
    for a, t in enumerate(targets):
        for b, c in enumerate(context):
            reference = visibility.coverage_reference(depth[t], pose[t], depth[c], pose[c], K)
            assert matrix[a, b] == pytest.approx(reference, abs=1.5 / depth[t].size), (t, c)
    assert 0.0 < matrix.max() and matrix.min() < 1.0  # a mix of seen and unseen views


def test_identical_views_cover_each_other_fully(episode_and_maze):
    episode, _ = episode_and_maze
    frames = np.arange(0, 64, 9)
    matrix = np.asarray(
        visibility.coverage_matrix(
            episode["depth"][frames],
            episode["camera_to_world"][frames],
            episode["depth"][frames],
            episode["camera_to_world"][frames],
            episode["intrinsics"],
        )
    )
    np.testing.assert_allclose(np.diag(matrix), 1.0)


def test_hand_made_trajectory(episode_and_maze):
    """Turning on the spot: views 90 degrees apart (90-degree field of view) share nothing
    but their border, so each target is seen exactly where the same heading was."""
    episode, maze = episode_and_maze
    x, y, _ = episode["position"][0]
    east, north, west = 0.0, np.pi / 2, np.pi
    headings = [east, north, east, north, east, north, west]  # 5 context frames, 3 targets
    depth, pose, K = render_poses(maze, [(x, y, h) for h in headings[:5] + [north, east, west]])
    distance = visibility.frames_since_seen(
        depth[5:], pose[5:], depth[:5], pose[:5], K, target_frame_M=[5, 6, 7]
    )
    # Frame 5 faces north: last seen at frame 3 -> 2. Frame 6 east: frame 4 -> 2.
    # Frame 7 faces west, which no context frame did.
    np.testing.assert_array_equal(distance, [2, 2, visibility.NEVER_SEEN])
    # Later targets count from their own stream position.
    distance = visibility.frames_since_seen(
        depth[5:6], pose[5:6], depth[:5], pose[:5], K, target_frame_M=[40]
    )
    np.testing.assert_array_equal(distance, [37])


def test_retrieval_views_were_seen_at_most_at_their_source(episode_and_maze):
    episode, _ = episode_and_maze
    n, m = 40, 20
    source = n - 2 - np.arange(m)
    fields = [episode[k] for k in ("depth", "camera_to_world")]
    distance = visibility.frames_since_seen(
        fields[0][source],
        fields[1][source],
        fields[0][:n],
        fields[1][:n],
        episode["intrinsics"],
        n + np.arange(m),
    )
    # The copied source frame covers its view fully, so the latest covering frame is at or
    # after it: distance <= (n + j) - (n - 2 - j) = 2j + 2.
    assert np.all(distance >= 1)
    assert np.all(distance <= 2 * np.arange(m) + 2)


def test_block_size_does_not_change_the_answer(episode_and_maze):
    episode, _ = episode_and_maze
    args = (
        episode["depth"][40:48],
        episode["camera_to_world"][40:48],
        episode["depth"][:40],
        episode["camera_to_world"][:40],
        episode["intrinsics"],
    )
    a = visibility.latest_covering_frame(*args, block=16)
    b = visibility.latest_covering_frame(*args, block=7)
    np.testing.assert_array_equal(a, b)
    # Brute force: the whole coverage matrix, latest column at or above one half.
    covered = np.asarray(visibility.coverage_matrix(*args)) >= 0.5
    brute = np.where(covered.any(1), 39 - np.argmax(covered[:, ::-1], axis=1), -1)
    np.testing.assert_array_equal(a, brute)
    assert (a >= 0).any()


def test_bad_inputs_are_named(episode_and_maze):
    episode, _ = episode_and_maze
    d, p, K = episode["depth"], episode["camera_to_world"], episode["intrinsics"]
    with pytest.raises(ValueError, match="after the context"):
        visibility.frames_since_seen(d[10:12], p[10:12], d[:10], p[:10], K, [9, 10])
    with pytest.raises(ValueError, match=r"camera_to_world must be \[2, 4, 4\]"):
        visibility.frames_since_seen(d[10:12], p[10:11], d[:10], p[:10], K, [10, 11])
