"""An exploring policy for Memory Maze's discrete action set, driven by the maze layout.

Oracle-style: it walks to random goal cells along BFS shortest paths of the grid maze (which
Memory Maze exposes with `global_observables=True`), steering with the six discrete actions so
that it mostly looks down corridors instead of at walls, and revisits places: every goal is a
random free cell, and part of the time (`retrace_prob`) the next goal is where the previous path
started, so the agent walks that path back. A little action noise and a stuck detector keep it
from repeating itself exactly or pushing against a wall corner.

Pure numpy (no MuJoCo): it is tested on its own, and `lssvwm.data.memory_maze` runs it in the
real environment.

Grid conventions (those of memory_maze's global observables): `maze_layout_YX[y, x]` is 1 for a
free cell, row 0 at the bottom (small y); `agent_pos` is (x, y) in cell units, so cell (x, y)
spans [x, x+1) x [y, y+1) and its centre is (x + 0.5, y + 0.5); `agent_dir` is the unit forward
vector (dx, dy). Heading angles are counter-clockwise from +x.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence

import numpy as np

# Memory Maze's discrete action set (memory_maze.tasks, `discrete_actions=True`).
NOOP, FORWARD, LEFT, RIGHT, FORWARD_LEFT, FORWARD_RIGHT = range(6)
ACTION_NAMES = ("noop", "forward", "left", "right", "forward_left", "forward_right")
NUM_ACTIONS = len(ACTION_NAMES)
_MOVING_ACTIONS = (FORWARD, FORWARD_LEFT, FORWARD_RIGHT)

Cell = tuple[int, int]  # (x, y)
_NEIGHBOURS = ((1, 0), (-1, 0), (0, 1), (0, -1))


@dataclasses.dataclass(frozen=True)
class ExplorerConfig:
    """Knobs of `ExplorerPolicy`; angles in degrees, distances in cells.

    Attributes:
      turn_in_place_deg: heading error above which the agent turns without moving.
      straight_deg: heading error below which it walks straight; in between it walks and turns.
      waypoint_radius: a path cell counts as passed once the agent is this close to its centre.
      min_goal_distance: a new random goal is at least this many steps (BFS) away, if possible.
      retrace_prob: probability that the next goal is the start of the path just walked.
      random_action_prob: probability of replacing the chosen action by a uniformly random one.
      stuck_window: steps over which the stuck detector measures progress.
      stuck_distance: moving less than this over `stuck_window` forward steps means stuck.
      escape_steps: turning steps taken to get unstuck, before re-planning.
    """

    turn_in_place_deg: float = 40.0
    straight_deg: float = 10.0
    waypoint_radius: float = 0.3
    min_goal_distance: int = 3
    retrace_prob: float = 0.2
    random_action_prob: float = 0.05
    stuck_window: int = 8
    stuck_distance: float = 0.15
    escape_steps: int = 3

    def __post_init__(self):
        if not 0 <= self.straight_deg <= self.turn_in_place_deg <= 180:
            raise ValueError(
                "need 0 <= straight_deg <= turn_in_place_deg <= 180, got "
                f"{self.straight_deg}, {self.turn_in_place_deg}"
            )
        for name in ("retrace_prob", "random_action_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.waypoint_radius <= 0 or self.waypoint_radius >= 0.5:
            raise ValueError(f"waypoint_radius must be in (0, 0.5), got {self.waypoint_radius}")
        if self.min_goal_distance < 1 or self.stuck_window < 2 or self.escape_steps < 1:
            raise ValueError("min_goal_distance >= 1, stuck_window >= 2, escape_steps >= 1")


def _check_layout(maze_layout_YX: np.ndarray) -> np.ndarray:
    layout = np.asarray(maze_layout_YX)
    if layout.ndim != 2 or 0 in layout.shape:
        raise ValueError(f"maze layout must be a non-empty 2-D grid, got shape {layout.shape}")
    if not np.isin(layout, (0, 1)).all():
        raise ValueError("maze layout must hold 0 (wall) and 1 (free) only")
    return layout.astype(bool)


def bfs_distances(free_YX: np.ndarray, start: Cell) -> np.ndarray:
    """Steps from `start` to every cell over 4-connected free cells; -1 where unreachable."""
    height, width = free_YX.shape
    distance = np.full((height, width), -1, dtype=np.int64)
    x0, y0 = start
    if not (0 <= x0 < width and 0 <= y0 < height and free_YX[y0, x0]):
        raise ValueError(f"start cell {start} is not a free cell of the {width}x{height} maze")
    distance[y0, x0] = 0
    queue = collections.deque([start])
    while queue:
        x, y = queue.popleft()
        for dx, dy in _NEIGHBOURS:
            nx, ny = x + dx, y + dy
            if 0 <= nx < width and 0 <= ny < height and free_YX[ny, nx] and distance[ny, nx] < 0:
                distance[ny, nx] = distance[y, x] + 1
                queue.append((nx, ny))
    return distance


def shortest_path(free_YX: np.ndarray, start: Cell, goal: Cell) -> list[Cell]:
    """A shortest 4-connected path of cells from `start` to `goal`, both included.

    Raises ValueError if the goal cannot be reached.
    """
    distance = bfs_distances(free_YX, goal)  # walk downhill from start to goal
    x, y = start
    if distance[y, x] < 0:
        raise ValueError(f"cell {goal} cannot be reached from {start}")
    height, width = free_YX.shape
    path = [start]
    while distance[y, x] > 0:
        for dx, dy in _NEIGHBOURS:
            nx, ny = x + dx, y + dy
            if 0 <= nx < width and 0 <= ny < height and distance[ny, nx] == distance[y, x] - 1:
                x, y = nx, ny
                break
        path.append((x, y))
    return path


def wrap_angle(angle: float | np.ndarray) -> float | np.ndarray:
    """Maps angles (radians) to [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


def steering_action(heading_error: float, config: ExplorerConfig) -> int:
    """The discrete action that reduces `heading_error` (radians, target minus current, CCW +).

    Memory Maze's `left` turns counter-clockwise (heading increases), `right` clockwise.
    """
    error_deg = float(np.degrees(wrap_angle(heading_error)))
    if abs(error_deg) > config.turn_in_place_deg:
        return LEFT if error_deg > 0 else RIGHT
    if abs(error_deg) > config.straight_deg:
        return FORWARD_LEFT if error_deg > 0 else FORWARD_RIGHT
    return FORWARD


class ExplorerPolicy:
    """Walks to random goals along shortest paths; call `act(agent_pos, agent_dir)` each step.

    Deterministic for a given `rng` state and sequence of observations.
    """

    def __init__(
        self,
        maze_layout_YX: np.ndarray,
        rng: np.random.Generator,
        config: ExplorerConfig | None = None,
    ):
        self.free_YX = _check_layout(maze_layout_YX)
        if not self.free_YX.any():
            raise ValueError("maze layout has no free cell")
        self.config = config or ExplorerConfig()
        self._rng = rng
        self.path: list[Cell] = []
        self._aim = 0  # index into self.path of the cell whose centre the agent walks to
        self._leg_start: Cell | None = None  # where the walk to the current goal began
        self._replan = False
        self._recent_positions: collections.deque = collections.deque(
            maxlen=self.config.stuck_window
        )
        self._recent_actions: collections.deque = collections.deque(maxlen=self.config.stuck_window)
        self._escape_left = 0
        self._escape_action = LEFT
        self.goals_reached = 0

    @property
    def goal(self) -> Cell | None:
        return self.path[-1] if self.path else None

    def _cell_of(self, agent_pos: np.ndarray) -> Cell:
        height, width = self.free_YX.shape
        x = int(np.clip(np.floor(agent_pos[0]), 0, width - 1))
        y = int(np.clip(np.floor(agent_pos[1]), 0, height - 1))
        if not self.free_YX[y, x]:
            # Rounding at a wall face can put the ball's centre "in" the wall cell: use the
            # nearest free neighbour.
            candidates = [
                (x + dx, y + dy)
                for dx, dy in _NEIGHBOURS
                if 0 <= x + dx < width and 0 <= y + dy < height and self.free_YX[y + dy, x + dx]
            ]
            if not candidates:
                raise ValueError(f"agent position {tuple(agent_pos)} is inside a wall block")
            x, y = min(
                candidates,
                key=lambda c: np.hypot(c[0] + 0.5 - agent_pos[0], c[1] + 0.5 - agent_pos[1]),
            )
        return x, y

    def _choose_goal(self, cell: Cell, previous_start: Cell | None) -> Cell:
        if (
            previous_start is not None
            and previous_start != cell
            and self._rng.random() < self.config.retrace_prob
        ):
            return previous_start
        distance = bfs_distances(self.free_YX, cell)
        far = np.argwhere(distance >= self.config.min_goal_distance)
        if len(far) == 0:
            far = np.argwhere(distance >= 1)
        if len(far) == 0:
            return cell  # a one-cell maze: nowhere to go
        y, x = far[self._rng.integers(len(far))]
        return int(x), int(y)

    def _plan(self, cell: Cell, goal: Cell) -> None:
        self.path = shortest_path(self.free_YX, cell, goal)
        self._aim = 0

    def _new_goal(self, cell: Cell) -> None:
        previous_start, self._leg_start = self._leg_start, cell
        self._plan(cell, self._choose_goal(cell, previous_start))

    def _is_stuck(self) -> bool:
        if len(self._recent_positions) < self.config.stuck_window:
            return False
        if not all(a in _MOVING_ACTIONS for a in self._recent_actions):
            return False
        moved = np.linalg.norm(self._recent_positions[-1] - self._recent_positions[0])
        return moved < self.config.stuck_distance

    def act(self, agent_pos: Sequence[float], agent_dir: Sequence[float]) -> int:
        """The next action for an agent at `agent_pos` (cells) facing `agent_dir` (unit xy)."""
        pos = np.array(agent_pos, dtype=np.float64)[:2]  # a copy: the stuck detector keeps it
        direction = np.array(agent_dir, dtype=np.float64)[:2]
        if not (np.isfinite(pos).all() and np.isfinite(direction).all()):
            raise ValueError(f"non-finite agent state: pos={pos}, dir={direction}")
        action = self._choose(pos, direction)
        if self._rng.random() < self.config.random_action_prob:
            action = int(self._rng.integers(NUM_ACTIONS))
        self._recent_positions.append(pos)
        self._recent_actions.append(action)
        return action

    def _choose(self, pos: np.ndarray, direction: np.ndarray) -> int:
        cfg = self.config
        if self._escape_left > 0:
            self._escape_left -= 1
            return self._escape_action
        if self._is_stuck():
            self._recent_positions.clear()
            self._recent_actions.clear()
            self._escape_action = LEFT if self._rng.random() < 0.5 else RIGHT
            self._escape_left = cfg.escape_steps - 1
            self._replan = True  # from wherever the escape leaves the agent, same goal
            return self._escape_action

        cell = self._cell_of(pos)
        if not self.path:
            self._new_goal(cell)
        elif self._replan or cell not in self.path[max(self._aim - 1, 0) :]:
            self._replan = False
            self._plan(cell, self.path[-1])  # drifted off the path: re-plan to the same goal
        else:
            # Skip ahead if the agent already reached a later cell of the path.
            self._aim = max(self._aim, self.path.index(cell, max(self._aim - 1, 0)))

        def centre(k: int) -> np.ndarray:
            return np.asarray(self.path[k], dtype=np.float64) + 0.5

        while np.linalg.norm(centre(self._aim) - pos) < cfg.waypoint_radius:
            if self._aim == len(self.path) - 1:  # goal reached
                self.goals_reached += 1
                self._new_goal(cell)
                if len(self.path) == 1:
                    return NOOP
            else:
                self._aim += 1

        to_target = centre(self._aim) - pos
        heading = np.arctan2(direction[1], direction[0])
        return steering_action(float(np.arctan2(to_target[1], to_target[0]) - heading), cfg)
