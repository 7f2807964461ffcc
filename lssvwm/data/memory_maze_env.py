"""Episodes recorded from DeepMind's Memory Maze (MuJoCo), with depth, camera pose and intrinsics.

Needs the optional extra: `pip install 'lssvwm[memory-maze]'` (memory-maze, gym, dm-control,
mujoco 3.x). MuJoCo renders off-screen on the CPU through OSMesa (Debian: `libosmesa6`):
`MUJOCO_GL` defaults to `osmesa` here unless already set (`egl` works too where Mesa or a GPU
driver provides it).

One episode is a dict of numpy arrays following `lssvwm.data.episodes` (ARCHITECTURE.md
"Datasets"): `frames uint8 [T,H,W,3]`, `depth float32 [T,H,W]`, `camera_to_world float32
[T,4,4]`, `intrinsics float32 [3,3]`, `actions int32 [T]`, `position float32 [T,3]`.

How each field is made:
  frames           the `walker/egocentric` camera image, without the target-colour border that
                   Memory Maze paints by default (the border has no depth or pose; the current
                   target is not part of this dataset).
  depth            the physics renderer's depth for the same camera and state: camera-frame z
                   in metres (MuJoCo reads the OpenGL z-buffer, i.e. planar depth, not ray
                   length); the sky (~900 m, the skybox) becomes +inf.
  camera_to_world  the camera's world pose from MuJoCo (`cam_xpos`, `cam_xmat`), converted from
                   OpenGL axes (x right, y up, looking down -z) to OpenCV axes (x right, y down,
                   z forward): R_cv = R_gl @ diag(1, -1, -1).
  intrinsics       from the camera's vertical field of view: fy = (H/2) / tan(fovy/2), fx = fy
                   (MuJoCo keeps pixels square), principal point (W/2, H/2) with the pixel centre
                   convention (u + 0.5, v + 0.5).
  position         the agent's (x, y) in metres and heading (radians, CCW from +x) from Memory
                   Maze's `agent_pos` / `agent_dir` global observables.
  actions          Memory Maze's discrete actions (0 noop, 1 forward, 2 left, 3 right,
                   4 forward+left, 5 forward+right); actions[t] produced frame t from frame t-1,
                   and actions[0] = 0 (the reset frame).

World frame: MuJoCo's (z up, floor at z = 0, metres), translated so that the lower-left corner
of the maze interior is the origin, so x and y run over [0, maze_size * 2 m] (cells are 2 m)
and `position[:, :2] / 2` is Memory Maze's `agent_pos` in cell units.

Every episode is deterministic for (seed, split, episode index): its maze, spawn and policy
noise come from seeds derived from all three, and each episode gets a fresh environment.

Public API (re-exported by `lssvwm.data.memory_maze`, which also holds the TFDS builder):
  MemoryMazeConfig                                  maze size, resolution, length, seed, policy
  record_episode(config, episode_index, split=)     -> episode dict
  make_environment(maze_size, image_size, seed)     the dm_env environment used for recording
  episode_seeds(seed, episode_index, split=)        the environment and policy seeds of one episode
  camera_to_world_opencv, intrinsics_from_fovy, depth_with_sky_as_inf   geometry conversions
"""

from __future__ import annotations

import dataclasses
import os
import traceback
import types
from collections.abc import Callable
from typing import Any

import numpy as np

from lssvwm.data.memory_maze_policy import NOOP, ExplorerConfig, ExplorerPolicy
from lssvwm.errors import LssvwmError

MAZE_SIZES = (9, 11, 13, 15)
CAMERA_NAME = "walker/egocentric"
# Memory Maze's default: 9x9 has a 250 s limit at 4 actions per second.
DEFAULT_EPISODE_LENGTH = 1000
# The skybox renders at roughly 900 m; every real surface lies within the arena (tens of metres).
# Anything deeper than this fraction of the far clipping plane is sky.
_SKY_FRACTION_OF_FAR_PLANE = 0.25


@dataclasses.dataclass(frozen=True)
class MemoryMazeConfig:
    """What to record.

    Attributes:
      maze_size: interior size in cells, one of Memory Maze's tasks: 9, 11, 13 or 15.
      image_size: square frame side in pixels (Memory Maze's default is 64).
      episode_length: frames per episode, T (the environment's own time limit is lifted).
      seed: base seed; episode i uses seeds derived from (seed, i).
      explorer: policy knobs.
    """

    maze_size: int = 9
    image_size: int = 64
    episode_length: int = DEFAULT_EPISODE_LENGTH
    seed: int = 0
    explorer: ExplorerConfig = dataclasses.field(default_factory=ExplorerConfig)

    def __post_init__(self):
        if self.maze_size not in MAZE_SIZES:
            raise ValueError(f"maze_size must be one of {MAZE_SIZES}, got {self.maze_size}")
        if self.image_size < 8:
            raise ValueError(f"image_size must be >= 8 pixels, got {self.image_size}")
        if self.episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {self.episode_length}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


SPLIT_CODES = {"train": 0, "test": 1}


def episode_seeds(
    seed: int, episode_index: int, split: str = "train"
) -> tuple[int, np.random.SeedSequence]:
    """(environment seed, policy seed sequence) of episode `episode_index` of `split`."""
    if episode_index < 0:
        raise ValueError(f"episode_index must be >= 0, got {episode_index}")
    if split not in SPLIT_CODES:
        raise ValueError(f"unknown split {split!r}; known: {sorted(SPLIT_CODES)}")
    entropy = [seed, SPLIT_CODES[split], episode_index]
    env_sequence, policy_sequence = np.random.SeedSequence(entropy).spawn(2)
    env_seed = int(env_sequence.generate_state(1, dtype=np.uint32)[0] >> 1)  # < 2**31
    return env_seed, policy_sequence


# ---------------------------------------------------------------------------------------------
# Geometry conversions (pure numpy).
# ---------------------------------------------------------------------------------------------

_GL_TO_CV = np.diag([1.0, -1.0, -1.0])


def camera_to_world_opencv(
    cam_xpos: np.ndarray, cam_xmat: np.ndarray, world_offset: np.ndarray | None = None
) -> np.ndarray:
    """4x4 OpenCV camera-to-world pose from MuJoCo's camera position and orientation.

    Args:
      cam_xpos: [3] camera position in MuJoCo's world frame.
      cam_xmat: [3, 3] or [9] (row-major) rotation whose columns are the camera's OpenGL axes
        (x right, y up, z backwards) in world coordinates.
      world_offset: [3] added to the position (the translation into this dataset's world frame).
    """
    rotation_gl = np.asarray(cam_xmat, dtype=np.float64).reshape(3, 3)
    pose = np.eye(4)
    pose[:3, :3] = rotation_gl @ _GL_TO_CV
    pose[:3, 3] = np.asarray(cam_xpos, dtype=np.float64).reshape(3)
    if world_offset is not None:
        pose[:3, 3] += np.asarray(world_offset, dtype=np.float64).reshape(3)
    return pose.astype(np.float32)


def intrinsics_from_fovy(fovy_degrees: float, height: int, width: int) -> np.ndarray:
    """K for a MuJoCo camera with vertical field of view `fovy_degrees` rendered at H x W."""
    if not 0 < fovy_degrees < 180:
        raise ValueError(f"fovy must be in (0, 180) degrees, got {fovy_degrees}")
    focal = 0.5 * height / np.tan(np.radians(fovy_degrees) / 2)
    return np.array(
        [[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]], dtype=np.float32
    )


def depth_with_sky_as_inf(depth_HW: np.ndarray, far_plane: float) -> np.ndarray:
    """Renderer depth (metres) as float32 with the sky (beyond a quarter of the far plane) +inf."""
    depth = np.asarray(depth_HW, dtype=np.float32).copy()
    depth[depth > _SKY_FRACTION_OF_FAR_PLANE * far_plane] = np.inf
    return depth


# ---------------------------------------------------------------------------------------------
# The environment.
# ---------------------------------------------------------------------------------------------


class RenderingBackendError(LssvwmError, RuntimeError):
    """MuJoCo's off-screen rendering backend (`MUJOCO_GL`) did not load."""


# Packages of the extra: a missing one is an install problem, not a missing GL library.
_EXTRA_MODULES = ("memory_maze", "dm_control", "mujoco", "gym", "labmaze", "OpenGL")


def _import_memory_maze() -> types.ModuleType:
    os.environ.setdefault("MUJOCO_GL", "osmesa")
    try:
        from memory_maze import tasks
    except Exception as error:
        if _is_missing_gl_library(error):
            backend = os.environ["MUJOCO_GL"]
            raise RenderingBackendError(
                f"Memory Maze cannot render off-screen: MUJOCO_GL={backend} did not load "
                f"({type(error).__name__}: {error}); install OSMesa (Debian/Ubuntu: apt-get "
                "install libosmesa6) or set MUJOCO_GL=egl where EGL is available"
            ) from error
        if not isinstance(error, ImportError):
            raise
        raise ImportError(
            "Memory Maze recording needs the optional extra: pip install 'lssvwm[memory-maze]' "
            f"(memory-maze, gym, dm-control, mujoco 3.x); import failed with: {error}"
        ) from error
    return tasks


def _is_missing_gl_library(error: BaseException) -> bool:
    """Whether importing Memory Maze failed in the OpenGL layer: PyOpenGL without the library
    of its platform (MUJOCO_GL=osmesa without libOSMesa: "'NoneType' object has no attribute
    'glGetError'"), or dm_control's renderer failing to start its backend."""
    if isinstance(error, ModuleNotFoundError) and (error.name or "").split(".")[0] in (
        _EXTRA_MODULES
    ):
        return False
    in_gl_layer = any(
        f"{os.sep}OpenGL{os.sep}" in frame.filename or f"{os.sep}_render{os.sep}" in frame.filename
        for frame in traceback.extract_tb(error.__traceback__)
    )
    return in_gl_layer or any(name in str(error) for name in ("glGetError", "OSMesa", "EGL"))


def _composer_environment(env: Any) -> Any:
    """The dm_control composer.Environment inside memory_maze's wrappers."""
    from dm_control import composer

    inner = env
    while not isinstance(inner, composer.Environment):
        if not hasattr(inner, "env"):
            raise TypeError(f"no dm_control composer.Environment inside {type(env).__name__}")
        inner = inner.env
    return inner


def _target_activation_vectorised(target: Any, physics: Any) -> None:
    """TargetSphere._update_activation without a Python loop over contacts (same result).

    dm_control calls it after every physics substep (50 per action) for every target; its loop
    over `physics.data.contact` was ~60% of the stepping time.
    """
    if target._activated:
        return
    contact = physics.data.contact
    geom1, geom2 = np.asarray(contact.geom1), np.asarray(contact.geom2)
    touching = (geom1 == target._geom_id) | (geom2 == target._geom_id)
    specific = target._specific_collision_geom_ids
    if specific:
        touching &= np.isin(geom1, specific) | np.isin(geom2, specific)
    if touching.any():
        target._activated = True
        physics.bind(target._material).rgba[-1] = 0


def _speed_up_target_activation(task: Any) -> None:
    from dm_control.locomotion.props import target_sphere

    for target in getattr(task, "_targets", ()):
        if type(target) is target_sphere.TargetSphere:
            target._update_activation = types.MethodType(_target_activation_vectorised, target)


def make_environment(maze_size: int = 9, image_size: int = 64, seed: int | None = None) -> Any:
    """Memory Maze's `memory_maze_{n}x{n}` dm_env task set up for recording.

    Global observables on (agent position, direction, maze layout), no target-colour border,
    discrete actions, no time limit (episodes end when the recorder stops).
    """
    if maze_size not in MAZE_SIZES:
        raise ValueError(f"maze_size must be one of {MAZE_SIZES}, got {maze_size}")
    tasks = _import_memory_maze()
    make_task = getattr(tasks, f"memory_maze_{maze_size}x{maze_size}")
    env = make_task(
        global_observables=True,
        target_color_in_image=False,
        camera_resolution=image_size,
        seed=seed,
    )
    composer_env = _composer_environment(env)
    if not hasattr(composer_env, "_time_limit"):
        raise RuntimeError("unsupported dm_control version: composer.Environment._time_limit")
    composer_env._time_limit = float("inf")
    _speed_up_target_activation(composer_env.task)
    return env


class _DepthCamera:
    """Depth of the egocentric camera from a renderer of its own, without multisampling.

    The frames come from the environment's renderer, which multisamples (4x MSAA); the depth
    read back from a multisampled buffer is one sample's, taken at (u + 0.375, v + 0.875)
    instead of the pixel centre (measured against MuJoCo's ray caster: ~1% depth error on the
    floor at grazing angles). A single-sample context renders depth at pixel centres exactly.
    One instance serves one physics instance (composer rebuilds physics on every reset).
    """

    def __init__(self, physics: Any, height: int, width: int):
        import mujoco

        self.physics = physics
        quality = physics.model.ptr.vis.quality
        samples, quality.offsamples = quality.offsamples, 0
        try:
            self._renderer = mujoco.Renderer(physics.model.ptr, height=height, width=width)
        finally:
            quality.offsamples = samples
        self._renderer.enable_depth_rendering()
        model = physics.model
        self.far_plane = float(model.vis.map.zfar * model.stat.extent)

    def render(self) -> np.ndarray:
        self._renderer.update_scene(self.physics.data.ptr, camera=CAMERA_NAME)
        return depth_with_sky_as_inf(self._renderer.render(), self.far_plane)

    def close(self) -> None:
        self._renderer.close()


def _world_offset(env: Any) -> np.ndarray:
    """Translation from MuJoCo's world (origin at the maze centre) to ours (interior corner)."""
    arena = _composer_environment(env).task.root_entity
    interior_cells = arena.maze.width - 2  # the text maze includes the outer walls
    half = 0.5 * interior_cells * arena.xy_scale
    return np.array([half, half, 0.0])


def _cell_size(env: Any) -> float:
    return float(_composer_environment(env).task.root_entity.xy_scale)


def record_episode(
    config: MemoryMazeConfig,
    episode_index: int,
    *,
    split: str = "train",
    on_step: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Records episode `episode_index` of `split` with the exploring policy.

    Args:
      config: what to record.
      episode_index: which episode; seeds derive from (config.seed, split, episode_index).
      split: "train" or "test" (different seeds, so the splits share no episode).
      on_step: called with the number of frames recorded so far after each frame (progress).

    Returns:
      The episode dict (see module docstring), T = config.episode_length.
    """
    env_seed, policy_seed = episode_seeds(config.seed, episode_index, split)
    env = make_environment(config.maze_size, config.image_size, seed=env_seed)
    try:
        return _record(env, config, np.random.default_rng(policy_seed), on_step)
    finally:
        env.close()


def _record(
    env: Any,
    config: MemoryMazeConfig,
    rng: np.random.Generator,
    on_step: Callable[[int], None] | None,
) -> dict[str, np.ndarray]:
    length, size = config.episode_length, config.image_size
    episode = {
        "frames": np.empty((length, size, size, 3), np.uint8),
        "depth": np.empty((length, size, size), np.float32),
        "camera_to_world": np.empty((length, 4, 4), np.float32),
        "intrinsics": np.empty((3, 3), np.float32),
        "actions": np.empty((length,), np.int32),
        "position": np.empty((length, 3), np.float32),
    }
    timestep = env.reset()
    physics = env.physics
    camera = _DepthCamera(physics, size, size)
    try:
        offset = _world_offset(env)
        cell_size = _cell_size(env)
        camera_id = physics.model.name2id(CAMERA_NAME, "camera")
        fovy = float(physics.model.cam_fovy[camera_id])
        episode["intrinsics"][:] = intrinsics_from_fovy(fovy, size, size)
        policy = ExplorerPolicy(timestep.observation["maze_layout"], rng, config.explorer)
        action = NOOP
        obs = timestep.observation
        for t in range(length):
            if t > 0:
                action = policy.act(obs["agent_pos"], obs["agent_dir"])
                obs = env.step(action).observation
            if env.physics is not physics:
                raise RuntimeError("the environment rebuilt its physics mid-episode")
            episode["frames"][t] = obs["image"]
            episode["depth"][t] = camera.render()
            episode["camera_to_world"][t] = camera_to_world_opencv(
                physics.data.cam_xpos[camera_id], physics.data.cam_xmat[camera_id], offset
            )
            episode["actions"][t] = action
            direction = obs["agent_dir"]
            episode["position"][t, :2] = np.asarray(obs["agent_pos"]) * cell_size
            episode["position"][t, 2] = np.arctan2(direction[1], direction[0])
            if on_step is not None:
                on_step(t + 1)
    finally:
        camera.close()
    return episode
