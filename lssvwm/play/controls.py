"""What the keys do: the controls of a run's model on its dataset, and the motion they make.

    controls = controls_for(run.model_config, data)       # PlayerError if it cannot be driven
    controls.names                                        # ("noop", "forward", ...)
    step = controls.apply("forward", pose_3)              # Step(conditioning, pose)

A discrete-action model is driven by its dataset's action set: maze3d's five actions (arrows or
WASD, space = no-op), Memory Maze's six, and for any other dataset the action numbers on the
digit keys. A pose model (the pose action modes) is driven by the same maze3d keys, each moving
or turning the camera by the dataset's step sizes (`steps_per_block`, `turns_per_circle`), and
is conditioned on the pose the user walks to; pose models are playable on maze3d only, the one
dataset whose step sizes are known.

On maze3d the camera pose is tracked for both kinds (the ground-truth panel renders it), and a
move into a wall is refused: it becomes a no-op (discrete) or leaves the pose as it was (pose),
so the model is never asked for a place the dataset cannot show, and the recorded path is what
the model was given.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from lssvwm.errors import LssvwmError
from lssvwm.nn.embed import ACTION_FIELDS

# KeyboardEvent.key values per action name (lower-case letters; the page lower-cases them).
KEYS = {
    "noop": (" ",),
    "forward": ("ArrowUp", "w"),
    "backward": ("ArrowDown", "s"),
    "turn_left": ("ArrowLeft", "a"),
    "turn_right": ("ArrowRight", "d"),
    "left": ("ArrowLeft", "a"),
    "right": ("ArrowRight", "d"),
    "forward_left": ("q",),
    "forward_right": ("e",),
}
# A wall is this close (metres) to the camera at most: the renderer's near field stays sane.
WALL_MARGIN = 0.15


class PlayerError(LssvwmError, ValueError):
    """The player cannot drive this run (model, dataset or flag): one line naming why."""


@dataclasses.dataclass(frozen=True)
class Control:
    name: str  # the action's name, e.g. "forward"
    keys: tuple[str, ...]  # KeyboardEvent.key values that press it

    def to_json(self) -> dict:
        return {"name": self.name, "keys": list(self.keys), "label": self.name.replace("_", " ")}


@dataclasses.dataclass(frozen=True)
class Step:
    """What one press gives the model and where it leaves the camera."""

    conditioning: int | np.ndarray  # the action index, or the pose float32 [3]
    pose_3: np.ndarray | None  # (x, y, heading) after the press; None where not tracked
    blocked: bool = False  # a move refused by a wall


@dataclasses.dataclass(frozen=True)
class MazeMotion:
    """maze3d's camera motion: `step_m` metres per move, `turn_rad` per turn, walls in `solid`
    [NX, NY] (block (ix, iy) is the square [ix, ix + 1) x [iy, iy + 1))."""

    step_m: float
    turn_rad: float
    solid: np.ndarray

    def move(self, name: str, pose_3: np.ndarray) -> tuple[np.ndarray, bool]:
        """(pose after the action `name`, whether a wall refused it)."""
        x, y, heading = (float(v) for v in pose_3)
        if name in ("turn_left", "turn_right"):
            heading += self.turn_rad if name == "turn_left" else -self.turn_rad
            return np.array([x, y, heading % (2 * math.pi)], np.float32), False
        if name not in ("forward", "backward"):
            return np.asarray(pose_3, np.float32), False
        sign = 1.0 if name == "forward" else -1.0
        new_x = x + sign * self.step_m * math.cos(heading)
        new_y = y + sign * self.step_m * math.sin(heading)
        if self.hits_wall(new_x, new_y):
            return np.asarray(pose_3, np.float32), True
        return np.array([new_x, new_y, heading], np.float32), False

    def hits_wall(self, x: float, y: float) -> bool:
        """Whether a wall block lies within WALL_MARGIN of (x, y), or it is outside the maze."""
        nx, ny = self.solid.shape
        for dx in (-WALL_MARGIN, WALL_MARGIN):
            for dy in (-WALL_MARGIN, WALL_MARGIN):
                ix, iy = math.floor(x + dx), math.floor(y + dy)
                if not (0 <= ix < nx and 0 <= iy < ny) or self.solid[ix, iy]:
                    return True
        return False


@dataclasses.dataclass(frozen=True)
class Controls:
    """The controls of one model on one dataset (module docstring)."""

    controls: tuple[Control, ...]
    kind: str  # "actions" (discrete) or "poses": what the recorded path holds
    motion: MazeMotion | None = None  # maze3d: the camera is tracked

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.controls)

    def to_json(self) -> list[dict]:
        return [c.to_json() for c in self.controls]

    def apply(self, name: str, pose_3: np.ndarray | None) -> Step:
        """The conditioning of pressing `name` at `pose_3` (None where the pose is not tracked)."""
        if name not in self.names:
            raise PlayerError(f"unknown control {name!r}; this model's: {list(self.names)}")
        if self.motion is None:
            return Step(self.names.index(name), None)
        new_pose, blocked = self.motion.move(name, pose_3)
        if self.kind == "poses":
            return Step(new_pose, new_pose, blocked)
        return Step(self.names.index("noop" if blocked else name), new_pose, blocked)


def _action_names(dataset: str, num_actions: int) -> tuple[str, ...]:
    if dataset == "maze3d":
        from lssvwm.data.maze_explorer import ACTION_NAMES
    elif dataset == "memory_maze":
        from lssvwm.data.memory_maze_policy import ACTION_NAMES
    else:
        if num_actions > 10:
            raise PlayerError(
                f"the model has {num_actions} actions on dataset {dataset!r}, whose actions have "
                "no names: the player maps action numbers to the digit keys 0-9 (10 at most)"
            )
        return tuple(f"action_{i}" for i in range(num_actions))
    if len(ACTION_NAMES) != num_actions:
        raise PlayerError(
            f"the model has {num_actions} actions but {dataset} has {len(ACTION_NAMES)} "
            f"({', '.join(ACTION_NAMES)}): the player cannot map its keys"
        )
    return ACTION_NAMES


def _keys(name: str) -> tuple[str, ...]:
    if name.startswith("action_"):
        return (name.removeprefix("action_"),)
    return KEYS[name]


def controls_for(model_config, data, maze_solid: np.ndarray | None = None) -> Controls:
    """The controls of a model (`WorldModelConfig`) on the run's `data` config section;
    `maze_solid` [NX, NY]: the episode's maze3d walls (the camera is tracked where given)."""
    mode, dataset = model_config.action_mode, data.dataset
    if mode not in ACTION_FIELDS:
        raise PlayerError(f"the player cannot drive action_mode {mode!r}")
    motion = None
    if dataset == "maze3d" and maze_solid is not None:
        from lssvwm.data.maze3d import Maze3dParams

        params = Maze3dParams.from_dict(data.maze3d.to_dict())
        motion = MazeMotion(
            step_m=1.0 / params.steps_per_block,
            turn_rad=2.0 * math.pi / params.turns_per_circle,
            solid=np.asarray(maze_solid, bool),
        )
    if mode == "discrete":
        names = _action_names(dataset, int(model_config.num_actions))
        controls = tuple(Control(name, _keys(name)) for name in names)
        return Controls(controls, "actions", motion)
    if motion is None:
        raise PlayerError(
            f"a {mode!r} model is driven by camera poses, whose step sizes the player knows for "
            f"maze3d only (this run's dataset is {dataset!r})"
        )
    from lssvwm.data.maze_explorer import ACTION_NAMES

    return Controls(tuple(Control(name, _keys(name)) for name in ACTION_NAMES), "poses", motion)
