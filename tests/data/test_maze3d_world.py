"""maze3d: maze layout, the exploring policy, determinism, and the TFDS builder round trip."""

import ml_collections
import numpy as np
import pytest

from lssvwm.data import episodes, maze3d, maze_explorer, maze_grid, sources
from lssvwm.data.maze_explorer import BACKWARD, FORWARD, INVERSE_ACTION, NOOP, TURN_LEFT

TINY = maze3d.Maze3dParams(
    height=16,
    width=16,
    maze_rows=4,
    maze_cols=5,
    num_colors=8,
    num_landmarks=3,
    episode_length=64,
    segment_length=16,
    train_episodes=3,
    test_episodes=1,
    reasoning_episodes=1,
    reasoning_context=40,
    reasoning_horizon=20,
    episodes_per_shard=2,
)


def test_maze_is_connected_enclosed_and_has_loops():
    rng = np.random.default_rng(0)
    maze = maze_grid.generate_maze(rng, rows=6, cols=7, num_colors=8, extra_openings=0.3)
    assert maze.solid.shape == (15, 13)
    assert maze.solid[0].all() and maze.solid[-1].all()
    assert maze.solid[:, 0].all() and maze.solid[:, -1].all()
    free = [tuple(b) for b in maze.free_blocks()]
    for goal in free[::5]:
        assert maze_grid.bfs_path(maze.solid, free[0], goal)[-1] == goal
    # A spanning tree of C cells has C - 1 passages; loops add more.
    passages = len(free) - 6 * 7
    assert passages > 6 * 7 - 1
    # Landmarks stand inside free blocks, clear of the centre lines the explorer walks.
    blocks = np.floor(maze.landmarks_xy).astype(int)
    assert not maze.solid[blocks[:, 0], blocks[:, 1]].any()
    off_centre = np.abs(maze.landmarks_xy - blocks - 0.5)
    assert np.all(off_centre > maze_grid.LANDMARK_RADIUS + 0.1)


def _replay(position0, actions, params):
    """Integrates the documented action semantics from the first pose."""
    step = 1.0 / params.steps_per_block
    turn = 2 * np.pi / params.turns_per_circle
    x, y, psi = (float(v) for v in position0)
    poses = [(x, y, psi)]
    for action in actions[1:]:
        if action in (FORWARD, BACKWARD):
            sign = 1 if action == FORWARD else -1
            x, y = x + sign * step * np.cos(psi), y + sign * step * np.sin(psi)
        elif action != NOOP:
            psi += turn if action == TURN_LEFT else -turn
        poses.append((x, y, psi))
    return np.array(poses)


@pytest.fixture(scope="module")
def long_trajectory():
    rng = np.random.default_rng(3)
    maze = maze_grid.generate_maze(rng, rows=7, cols=7, num_colors=8)
    return maze, maze_explorer.explore(maze, rng, 3000, TINY.explorer())


def test_actions_reproduce_the_poses(long_trajectory):
    maze, trajectory = long_trajectory
    assert trajectory.actions[0] == NOOP
    assert trajectory.actions.dtype == np.int32 and trajectory.position.dtype == np.float32
    replayed = _replay(trajectory.position[0], trajectory.actions, TINY)
    np.testing.assert_allclose(replayed[:, :2], trajectory.position[:, :2], atol=1e-4)
    wrapped = np.angle(np.exp(1j * (replayed[:, 2] - trajectory.position[:, 2])))
    np.testing.assert_allclose(wrapped, 0, atol=1e-4)
    # Smooth turns: the heading never changes by more than one turn step per frame.
    dpsi = np.abs(np.angle(np.exp(1j * np.diff(trajectory.position[:, 2]))))
    assert dpsi.max() <= 2 * np.pi / TINY.turns_per_circle + 1e-5


def test_explorer_stays_in_free_space_and_revisits_places(long_trajectory):
    maze, trajectory = long_trajectory
    blocks = np.floor(trajectory.position[:, :2]).astype(int)
    assert not maze.solid[blocks[:, 0], blocks[:, 1]].any()
    distances = np.linalg.norm(trajectory.position[:, None, :2] - maze.landmarks_xy[None], axis=-1)
    assert distances.min() > maze_grid.LANDMARK_RADIUS + 0.05
    cells = {tuple(c) for c in maze.cells()}
    visited = {tuple(b) for b in blocks}
    assert len(cells & visited) > 0.9 * len(cells)
    # Places come back after long absences: the memory the dataset is for.
    last_seen = {}
    long_returns = 0
    for t, block in enumerate(map(tuple, blocks)):
        if block in last_seen and t - last_seen[block] > 200:
            long_returns += 1
        last_seen[block] = t
    assert long_returns > 20


def test_explorer_retraces_about_a_fifth_of_the_time(long_trajectory):
    _, trajectory = long_trajectory
    fraction = trajectory.retracing.mean()
    assert 0.12 < fraction < 0.28, fraction
    assert (trajectory.actions[trajectory.retracing] == BACKWARD).any()  # steps backwards
    # Retracing revisits exact earlier poses (the lattice keeps them bit-identical).
    seen = set()
    for t in range(len(trajectory.actions)):
        pose = trajectory.position[t].tobytes()
        if trajectory.retracing[t]:
            assert pose in seen, f"frame {t} retraces to a pose never visited"
        seen.add(pose)


def test_revisit_mode_only_walks_through_visited_blocks():
    rng = np.random.default_rng(7)
    maze = maze_grid.generate_maze(rng, rows=7, cols=7, num_colors=8)
    trajectory = maze_explorer.explore(maze, rng, 600, TINY.explorer(), revisit_after=400)
    blocks = [tuple(b) for b in np.floor(trajectory.position[:, :2]).astype(int)]
    # The step in progress at frame 400 (a half turn and one block at most) is finished first.
    switch = 400 + TINY.turns_per_circle // 2 + TINY.steps_per_block
    assert set(blocks[switch:]) <= set(blocks[:switch])
    assert not trajectory.retracing[400:].any()
    assert len(set(map(tuple, trajectory.position[400:, :2].tolist()))) > 10  # it moves


def test_inverse_actions_are_an_involution():
    np.testing.assert_array_equal(INVERSE_ACTION[INVERSE_ACTION], np.arange(5))


def test_episodes_are_deterministic_per_seed_and_follow_the_contract():
    a = maze3d.generate_episode(TINY, "train", 1)
    b = maze3d.generate_episode(TINY, "train", 1)
    episodes.validate_episode(a)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert a["frames"].shape == (64, 16, 16, 3)
    other_index = maze3d.generate_episode(TINY, "train", 2)
    other_split = maze3d.generate_episode(TINY, "test", 1)
    other_seed = maze3d.generate_episode(
        maze3d.Maze3dParams(**{**TINY.to_dict(), "seed": 1}), "train", 1
    )
    for other in (other_index, other_split, other_seed):
        assert not np.array_equal(a["frames"], other["frames"])
    assert np.isfinite(a["depth"]).all()  # the ceiling closes the maze: no sky
    reasoning = maze3d.generate_episode(TINY, "reasoning", 0)
    assert len(reasoning["frames"]) == TINY.reasoning_length() == 64


def test_params_validation():
    with pytest.raises(ValueError, match="multiple of segment_length"):
        maze3d.Maze3dParams(episode_length=100, segment_length=64)
    with pytest.raises(ValueError, match="data.maze3d.colours is unknown"):
        maze3d.Maze3dParams.from_dict({"colours": 3})
    with pytest.raises(ValueError, match="eye_height"):
        maze3d.Maze3dParams(eye_height=1.5)


def test_builder_round_trip(tmp_path):
    data = ml_collections.ConfigDict(
        {
            "dataset": "maze3d",
            "data_dir": str(tmp_path),
            "num_workers": 0,
            "maze3d": TINY.to_dict(),
        }
    )
    builder = sources.get_builder(data)
    assert set(builder.info.splits) == {"train", "test", "reasoning"}
    assert builder.info.splits["train"].num_examples == 3 * 4
    assert builder.info.splits["train"].num_shards == 2
    source = sources.SegmentSource(builder, "train", fields=episodes.ALL_FIELDS)
    stored = sources.read_episode(source, 2)
    expected = maze3d.generate_episode(TINY, "train", 2)
    for key in expected:
        np.testing.assert_array_equal(stored[key], expected[key], err_msg=key)
    reasoning = sources.SegmentSource(builder, "reasoning", fields=("frames",))
    assert reasoning.index.episode_frames().tolist() == [64]
    # A second call finds the data and does not rebuild.
    again = sources.get_builder(data)
    assert again.data_path == builder.data_path
