"""The Memory Maze exploring policy, on its own (pure numpy: runs without the memory_maze extra).

The policy is driven through a small kinematic stand-in for Memory Maze's rolling ball, with
the turn and step sizes measured in the real environment (~17 degrees per turning action,
~0.24 cells per forward action, ~0.19 cells and ~16 degrees for forward+turn).
"""

import collections

import numpy as np
import pytest

from lssvwm.data import memory_maze_policy as mp


def _random_maze(rng, nodes=5):
    """A (2*nodes-1)^2 layout: a random spanning tree of node cells plus a few extra openings."""
    size = 2 * nodes - 1
    free = np.zeros((size, size), np.uint8)
    free[::2, ::2] = 1
    seen, stack = {(0, 0)}, [(0, 0)]
    while stack:
        x, y = stack[-1]
        options = [
            (x + dx, y + dy)
            for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))
            if 0 <= x + dx < nodes and 0 <= y + dy < nodes and (x + dx, y + dy) not in seen
        ]
        if not options:
            stack.pop()
            continue
        nx, ny = options[rng.integers(len(options))]
        free[y + ny, x + nx] = 1  # the wall cell between (2y, 2x) and (2ny, 2nx)
        seen.add((nx, ny))
        stack.append((nx, ny))
    walls = np.argwhere(free == 0)
    for y, x in walls[rng.choice(len(walls), size=len(walls) // 6, replace=False)]:
        if (x % 2) != (y % 2):  # open a few more passages (loops), never a pillar cell
            free[y, x] = 1
    return free


def _reference_distances(free, start):
    """Bellman-Ford style relaxation until nothing changes: slow and obvious."""
    h, w = free.shape
    inf = 10**9
    d = np.full((h, w), inf)
    d[start[1], start[0]] = 0
    changed = True
    while changed:
        changed = False
        for y in range(h):
            for x in range(w):
                if not free[y, x]:
                    continue
                for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                    nx, ny = x + dx, y + dy
                    if 0 <= nx < w and 0 <= ny < h and d[ny, nx] + 1 < d[y, x]:
                        d[y, x] = d[ny, nx] + 1
                        changed = True
    return np.where(d >= inf, -1, d)


class KinematicBall:
    """A disc (radius 0.1 cells) driven by Memory Maze's discrete actions; walls block moves."""

    STEP = {mp.FORWARD: (0.24, 0.0), mp.FORWARD_LEFT: (0.19, 16.0), mp.FORWARD_RIGHT: (0.19, -16.0)}
    TURN = {mp.LEFT: 17.5, mp.RIGHT: -17.5}
    RADIUS = 0.1

    def __init__(self, free, cell, heading_deg):
        self.free = free.astype(bool)
        self.pos = np.array(cell, float) + 0.5
        self.heading = np.radians(heading_deg)
        self.blocked = 0

    def _inside_wall(self, p):
        h, w = self.free.shape
        for ox in (-self.RADIUS, 0, self.RADIUS):
            for oy in (-self.RADIUS, 0, self.RADIUS):
                x, y = int(np.floor(p[0] + ox)), int(np.floor(p[1] + oy))
                if not (0 <= x < w and 0 <= y < h and self.free[y, x]):
                    return True
        return False

    def step(self, action):
        distance, turn = self.STEP.get(action, (0.0, self.TURN.get(action, 0.0)))
        self.heading += np.radians(turn)
        new = self.pos + distance * np.array([np.cos(self.heading), np.sin(self.heading)])
        if self._inside_wall(new):
            self.blocked += 1
        else:
            self.pos = new

    @property
    def direction(self):
        return np.array([np.cos(self.heading), np.sin(self.heading)])


def _run(free, steps, seed, config=None):
    y, x = np.argwhere(free == 1)[0]
    ball = KinematicBall(free, (x, y), heading_deg=37.0)
    policy = mp.ExplorerPolicy(free, np.random.default_rng(seed + 1), config)
    actions, positions = [], []
    for _ in range(steps):
        action = policy.act(ball.pos, ball.direction)
        ball.step(action)
        actions.append(action)
        positions.append(ball.pos.copy())
    return policy, ball, np.array(actions), np.array(positions)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bfs_distances_and_shortest_path_match_reference(seed):
    rng = np.random.default_rng(seed)
    free = _random_maze(rng)
    cells = [tuple(int(v) for v in c[::-1]) for c in np.argwhere(free == 1)]
    start = cells[rng.integers(len(cells))]
    np.testing.assert_array_equal(
        mp.bfs_distances(free.astype(bool), start), _reference_distances(free, start)
    )
    goal = cells[rng.integers(len(cells))]
    path = mp.shortest_path(free.astype(bool), start, goal)
    assert path[0] == start and path[-1] == goal
    assert len(path) == _reference_distances(free, start)[goal[1], goal[0]] + 1
    for (x0, y0), (x1, y1) in zip(path[:-1], path[1:], strict=True):
        assert abs(x1 - x0) + abs(y1 - y0) == 1 and free[y1, x1]


def test_shortest_path_unreachable_and_bad_cells_raise():
    free = np.array([[1, 0, 1]], bool)
    with pytest.raises(ValueError, match="cannot be reached"):
        mp.shortest_path(free, (0, 0), (2, 0))
    with pytest.raises(ValueError, match="not a free cell"):
        mp.bfs_distances(free, (1, 0))


def test_steering_action_turns_towards_the_target():
    cfg = mp.ExplorerConfig(turn_in_place_deg=40, straight_deg=10)
    assert mp.steering_action(np.radians(90), cfg) == mp.LEFT  # target CCW: heading must grow
    assert mp.steering_action(np.radians(-90), cfg) == mp.RIGHT
    assert mp.steering_action(np.radians(20), cfg) == mp.FORWARD_LEFT
    assert mp.steering_action(np.radians(-20), cfg) == mp.FORWARD_RIGHT
    assert mp.steering_action(np.radians(5), cfg) == mp.FORWARD
    assert mp.steering_action(np.radians(350), cfg) == mp.FORWARD  # wraps to -10 degrees
    assert mp.steering_action(np.radians(200), cfg) == mp.RIGHT  # wraps to -160 degrees


def test_explores_revisits_and_mostly_moves():
    free = _random_maze(np.random.default_rng(3))
    policy, ball, actions, positions = _run(free, steps=1500, seed=3)
    cells = [tuple(c) for c in np.floor(positions).astype(int)]
    assert len(set(cells)) >= 0.9 * free.sum(), "should visit nearly every free cell"
    # Revisits: count separate visits (entries) per cell.
    entries = collections.Counter(
        c for c, prev in zip(cells[1:], cells[:-1], strict=True) if c != prev
    )
    assert np.mean([entries[c] >= 3 for c in set(cells)]) > 0.5, "most cells seen 3+ times"
    assert policy.goals_reached >= 15
    moving = np.isin(actions, [mp.FORWARD, mp.FORWARD_LEFT, mp.FORWARD_RIGHT]).mean()
    assert moving > 0.5, f"only {moving:.0%} of actions move forward"
    assert ball.blocked < 0.05 * len(actions), f"bumped into walls {ball.blocked} times"


def test_deterministic_for_a_seed():
    free = _random_maze(np.random.default_rng(4))
    _, _, a1, p1 = _run(free, steps=300, seed=11)
    _, _, a2, p2 = _run(free, steps=300, seed=11)
    _, _, a3, _ = _run(free, steps=300, seed=12)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(p1, p2)
    assert (a1 != a3).any()


def test_retrace_walks_back_to_the_previous_start():
    free = _random_maze(np.random.default_rng(5))
    config = mp.ExplorerConfig(retrace_prob=1.0, random_action_prob=0.0)
    rng = np.random.default_rng(0)
    ball = KinematicBall(free, (0, 0), heading_deg=0.0)
    policy = mp.ExplorerPolicy(free, rng, config)
    goals = []
    starts = []
    for _ in range(600):
        ball.step(policy.act(ball.pos, ball.direction))
        if policy.path and (not goals or policy.goal != goals[-1]):
            goals.append(policy.goal)
            starts.append(policy.path[0])
    assert len(goals) >= 4
    # Every goal after the first is where the previous path started.
    assert goals[1:] == starts[:-1]


def test_escapes_when_stuck():
    """A ball that never moves (e.g. wedged on a corner) gets turning actions, then re-plans."""
    free = np.ones((3, 6), np.uint8)
    config = mp.ExplorerConfig(random_action_prob=0.0, stuck_window=6, escape_steps=3)
    policy = mp.ExplorerPolicy(free, np.random.default_rng(0), config)
    pos, direction = np.array([0.5, 1.5]), np.array([1.0, 0.0])
    policy.path = [(0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (5, 1)]  # straight ahead, +x
    actions = [policy.act(pos, direction) for _ in range(10)]
    assert actions[:6] == [mp.FORWARD] * 6
    assert actions[6] in (mp.LEFT, mp.RIGHT) and actions[6:9] == [actions[6]] * 3


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="0 \\(wall\\) and 1"):
        mp.ExplorerPolicy(np.array([[0, 2]]), np.random.default_rng(0))
    with pytest.raises(ValueError, match="2-D"):
        mp.ExplorerPolicy(np.ones(4), np.random.default_rng(0))
    with pytest.raises(ValueError, match="no free cell"):
        mp.ExplorerPolicy(np.zeros((2, 2)), np.random.default_rng(0))
    policy = mp.ExplorerPolicy(np.ones((2, 2)), np.random.default_rng(0))
    with pytest.raises(ValueError, match="non-finite"):
        policy.act([np.nan, 0.5], [1.0, 0.0])
    with pytest.raises(ValueError, match="straight_deg"):
        mp.ExplorerConfig(straight_deg=50, turn_in_place_deg=40)
    with pytest.raises(ValueError, match="retrace_prob"):
        mp.ExplorerConfig(retrace_prob=1.5)
