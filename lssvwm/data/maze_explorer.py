"""The maze3d exploring policy and its discrete actions.

Actions (int32; `actions[t]` produced frame t from frame t-1, `actions[0]` is NOOP):

  0 NOOP        stay
  1 FORWARD     move `1 / steps_per_block` metres along the heading
  2 BACKWARD    move the same distance against the heading (facing unchanged)
  3 TURN_LEFT   heading += 2 pi / turns_per_circle (counter-clockwise)
  4 TURN_RIGHT  heading -= 2 pi / turns_per_circle

The set is closed under inversion (INVERSE_ACTION), so a path can be walked backwards exactly:
applying INVERSE_ACTION[a_t] for t = n, n-1, ... returns through the same poses in reverse
(the retrieval task's ground truth). Poses live on a lattice — positions in multiples of
1 / steps_per_block metres from block centres, headings in multiples of 2 pi /
turns_per_circle — kept as integers, so walking back lands on bit-identical poses.

The explorer walks to random goal cells along shortest block paths, turning smoothly (one
turn step per frame) before each straight move, so episodes revisit places many times.
Part of the time (`retrace_fraction` of the frames, ~20% by default) it instead *retraces*:
it undoes its most recent moves by replaying their inverse actions — stepping backwards along
the way it came and turning back — which puts "walk the path backwards" inside the training
distribution. With `revisit_after = N` (the reasoning task) it explores normally for N frames,
finishes the block-to-block step in progress, and from then on only walks to places it has
already visited, through visited blocks, never retracing.

Public API: NOOP, FORWARD, BACKWARD, TURN_LEFT, TURN_RIGHT, ACTION_NAMES, INVERSE_ACTION,
            ExplorerConfig, Trajectory, explore(maze, rng, length, config, revisit_after=None)
"""

from __future__ import annotations

import dataclasses
from collections import deque

import numpy as np

from lssvwm.data.maze_grid import Maze, bfs_path

NOOP, FORWARD, BACKWARD, TURN_LEFT, TURN_RIGHT = range(5)
ACTION_NAMES = ("noop", "forward", "backward", "turn_left", "turn_right")
INVERSE_ACTION = np.array([NOOP, BACKWARD, FORWARD, TURN_RIGHT, TURN_LEFT], np.int32)
NUM_ACTIONS = len(ACTION_NAMES)


@dataclasses.dataclass(frozen=True)
class ExplorerConfig:
    steps_per_block: int = 4  # forward speed: 1 / steps_per_block metres per frame
    turns_per_circle: int = 24  # turn speed: 360 / turns_per_circle degrees per frame
    retrace_fraction: float = 0.2  # target share of frames spent retracing
    retrace_min: int = 8  # frames per retrace, drawn uniformly in [min, max]
    retrace_max: int = 96
    noop_probability: float = 0.02  # chance of a one-frame pause before each move

    def __post_init__(self):
        if self.turns_per_circle % 4:
            raise ValueError(
                f"turns_per_circle must be a multiple of 4, got {self.turns_per_circle}"
            )
        if self.steps_per_block < 1:
            raise ValueError(f"steps_per_block must be >= 1, got {self.steps_per_block}")
        if not 0.0 <= self.retrace_fraction < 1.0:
            raise ValueError(f"retrace_fraction must be in [0, 1), got {self.retrace_fraction}")
        if not 1 <= self.retrace_min <= self.retrace_max:
            raise ValueError("need 1 <= retrace_min <= retrace_max")


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """position float32 [T, 3] (x, y, heading in [0, 2 pi)), actions int32 [T],
    retracing bool [T] (frame produced while undoing earlier moves)."""

    position: np.ndarray
    actions: np.ndarray
    retracing: np.ndarray


class _Walker:
    """Integer lattice state: position in 1/steps_per_block metres, heading in turn steps."""

    def __init__(self, maze: Maze, config: ExplorerConfig, block: tuple[int, int], heading: int):
        self.maze, self.config = maze, config
        n = config.steps_per_block
        self.qx, self.qy = block[0] * n + n // 2, block[1] * n + n // 2  # block centre
        self.heading = heading
        self.positions: list[tuple[int, int, int]] = []
        self.actions: list[int] = []
        self.retracing: list[bool] = []
        self.history: list[int] = []  # net moves since the start (retraces pop from it)
        self.visited = {block}

    def at_rest(self) -> bool:
        """At a block centre, facing along a grid axis: where legs start and end."""
        n, quarter = self.config.steps_per_block, self.config.turns_per_circle // 4
        return self.qx % n == n // 2 and self.qy % n == n // 2 and self.heading % quarter == 0

    def block(self) -> tuple[int, int]:
        n = self.config.steps_per_block
        return (self.qx // n, self.qy // n)

    def record(self, action: int, retracing: bool = False) -> None:
        self.actions.append(action)
        self.retracing.append(retracing)
        self.positions.append((self.qx, self.qy, self.heading))

    def apply(self, action: int, retracing: bool = False) -> None:
        turns = self.config.turns_per_circle
        if action in (FORWARD, BACKWARD):
            quarter, rest = divmod(self.heading, turns // 4)
            if rest:
                raise AssertionError("moves happen only along the grid axes")
            dx, dy = ((1, 0), (0, 1), (-1, 0), (0, -1))[quarter]
            sign = 1 if action == FORWARD else -1
            self.qx += sign * dx
            self.qy += sign * dy
            if self.maze.solid[self.block()]:
                raise AssertionError(f"walked into a wall at block {self.block()}")
            self.visited.add(self.block())
        elif action == TURN_LEFT:
            self.heading = (self.heading + 1) % turns
        elif action == TURN_RIGHT:
            self.heading = (self.heading - 1) % turns
        self.record(action, retracing)
        if retracing:
            self.history.pop()
        elif action != NOOP:
            self.history.append(action)


def _heading_to(direction: tuple[int, int], turns: int) -> int:
    quarter = {(1, 0): 0, (0, 1): 1, (-1, 0): 2, (0, -1): 3}[direction]
    return quarter * turns // 4


def _turn_actions(current: int, target: int, turns: int, rng: np.random.Generator) -> list[int]:
    """One-step turns from heading `current` to `target`, the short way (a 180 either way)."""
    left = (target - current) % turns
    right = (current - target) % turns
    if left < right or (left == right and rng.random() < 0.5):
        return [TURN_LEFT] * left
    return [TURN_RIGHT] * right


def _bfs_within(allowed: set, start, goal) -> list[tuple[int, int]]:
    previous = {start: start}
    frontier = deque([start])
    while frontier:
        block = frontier.popleft()
        if block == goal:
            break
        x, y = block
        for nxt in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
            if nxt in allowed and nxt not in previous:
                previous[nxt] = block
                frontier.append(nxt)
    path = [goal]
    while path[-1] != start:
        path.append(previous[path[-1]])
    return path[::-1]


def explore(
    maze: Maze,
    rng: np.random.Generator,
    length: int,
    config: ExplorerConfig = ExplorerConfig(),
    *,
    revisit_after: int | None = None,
) -> Trajectory:
    """A `length`-frame exploring trajectory in `maze` (deterministic given `rng`)."""
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    turns, n = config.turns_per_circle, config.steps_per_block
    cells = [tuple(c) for c in maze.cells()]
    start = cells[int(rng.integers(len(cells)))]
    walker = _Walker(maze, config, start, heading=int(rng.integers(4)) * turns // 4)
    walker.record(NOOP)
    retraced = 0

    def budget() -> int:
        return length - len(walker.actions)

    while budget() > 0:
        revisiting = revisit_after is not None and len(walker.actions) >= revisit_after
        frames_so_far = len(walker.actions)
        if (
            not revisiting
            and walker.history
            and retraced < config.retrace_fraction * frames_so_far
            and rng.random() < 0.5
        ):
            # Undo at least `steps` moves, then keep undoing until back at rest (a block
            # centre, facing along an axis), where the next leg can start.
            steps = int(rng.integers(config.retrace_min, config.retrace_max + 1))
            done = 0
            while walker.history and budget() > 0 and (done < steps or not walker.at_rest()):
                walker.apply(int(INVERSE_ACTION[walker.history[-1]]), retracing=True)
                done += 1
            retraced += done
            continue

        here = walker.block()
        if revisiting:
            allowed = walker.visited
            candidates = [c for c in cells if c in allowed and c != here]
            if not candidates:
                candidates = [b for b in allowed if b != here] or [here]
            goal = candidates[int(rng.integers(len(candidates)))]
            path = _bfs_within(allowed, here, goal)
        else:
            goal = cells[int(rng.integers(len(cells)))]
            path = bfs_path(maze.solid, here, goal)
        if len(path) == 1:  # already there: look around a little instead
            for action in _turn_actions(
                walker.heading, (walker.heading + turns // 4) % turns, turns, rng
            )[: budget()]:
                walker.apply(action)
            continue
        for block, nxt in zip(path[:-1], path[1:], strict=True):
            target = _heading_to((nxt[0] - block[0], nxt[1] - block[1]), turns)
            moves = _turn_actions(walker.heading, target, turns, rng)
            if rng.random() < config.noop_probability:
                moves = [NOOP, *moves]
            moves += [FORWARD] * n
            for action in moves[: budget()]:
                walker.apply(action)
            if budget() <= 0:
                break
            if (
                not revisiting
                and revisit_after is not None
                and len(walker.actions) >= revisit_after
            ):
                break  # switch to revisiting at the next block centre, not the old goal

    q = np.asarray(walker.positions[:length], np.float64)
    offset = 0.5 - (n // 2) / n
    position = np.stack(
        [q[:, 0] / n + offset, q[:, 1] / n + offset, 2 * np.pi * q[:, 2] / turns], -1
    ).astype(np.float32)
    return Trajectory(
        position=position,
        actions=np.asarray(walker.actions[:length], np.int32),
        retracing=np.asarray(walker.retracing[:length], bool),
    )
