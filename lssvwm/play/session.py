"""One play-through of a trained run: prefill a context, then a frame per key press.

    session = PlaySession(load_run(DIR), PlayOptions(context=16, episode=0))
    frames = session.step("forward")      # [PlayFrame]: one unit (1 frame, or a chunk)
    session.reset_memory()                # before the next frame: as rollout's --reset=at:F:ssm
    session.restart()                     # back to the context (the prefilled cache is kept)
    session.state_bytes, session.frame_count, session.fps

No web code here (lssvwm.play.server drives it). Generation is rollout's, so that a recorded
play-through replays through `lssvwm.rollout` to the same frames: the context is `context`
frames of episode `episode` of the run's eval split (`split`, `start`), entered through the
sampler's parallel prefill with the first half of `split(PRNGKey(seed))`; generated frame i
(one unit at a time) is `Sampler.sample_unit(cache, actions, second half, i // unit)`; a reset
pressed after F frames resets the cache before frame F (`WorldModel.reset_cache`, the
`reset_scope` of rollout's policies: "ssm" forgets the long-term memory -- SSM state or spatial
store -- and keeps the k-frame attention cache, "all" forgets everything).
"""

from __future__ import annotations

import collections
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from lssvwm.common.frames import model_range_to_uint8
from lssvwm.evaluation import loading
from lssvwm.models import cache_nbytes, inputs
from lssvwm.models.world_model import RESET_SCOPES
from lssvwm.play.controls import Controls, PlayerError, controls_for
from lssvwm.play.maze_view import MazeView

FPS_WINDOW = 16  # frames the shown frames-per-second figure is averaged over


@dataclasses.dataclass(frozen=True)
class PlayOptions:
    context: int = 16
    split: str | None = None  # None: the run's eval split
    episode: int = 0
    start: int = 0  # first context frame within the episode
    seed: int = 0
    reset_scope: str = "ssm"  # what "reset memory" forgets (WorldModel.reset_cache)
    data_dir: str | None = None
    data_overrides: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class PlayFrame:
    frame_HWC: np.ndarray  # uint8, the generated frame
    truth_HWC: np.ndarray | None  # uint8, the maze at the same pose (maze3d), else None
    index: int  # frames generated since the context, this one excluded
    seconds: float  # generation time of its unit per frame (blocked until ready)
    state_bytes: int  # the carried cache after it
    control: str
    blocked: bool  # a move refused by a wall (maze3d)


class PlaySession:
    """A trained run played one key press at a time (module docstring)."""

    def __init__(self, run: loading.LoadedRun, options: PlayOptions = PlayOptions(), *, log=print):
        if options.reset_scope not in RESET_SCOPES:
            raise PlayerError(
                f"reset scope {options.reset_scope!r} is not one of {list(RESET_SCOPES)}"
            )
        self.run, self.options = run, options
        model_config = run.model_config
        self.unit = model_config.unit
        self.data = loading.data_config(
            run, data_dir=options.data_dir, overrides=options.data_overrides
        )
        self.split = options.split or self.data.get("eval_split", "test")
        episode, self.episode_id = self._read_episode()
        self._check_context(len(episode["frames"]))
        context_index = np.arange(options.start, options.start + options.context)
        context = {k: v if k == "intrinsics" else v[context_index] for k, v in episode.items()}
        self.context_frames_THWC = context["frames"]
        self.context_poses_T3 = context.get("position")
        self._intrinsics = episode.get("intrinsics")

        self.view = None
        if self.data.dataset == "maze3d" and "position" in episode:
            self.view = MazeView.for_episode(self.data, self.split, self.episode_id)
            if not np.array_equal(
                self.view.render(self.context_poses_T3[-1]), self.context_frames_THWC[-1]
            ):
                raise PlayerError(
                    f"maze3d episode {self.episode_id} of {self.split!r} does not regenerate as "
                    "stored: the run's data.maze3d config differs from the dataset on disk"
                )
        solid = None if self.view is None else self.view.maze.solid
        self.controls: Controls = controls_for(model_config, self.data, solid)
        if inputs.needs_geometry(model_config) and self.view is None:
            raise PlayerError(
                f"the {model_config.mixer} model needs a camera per frame, which the player "
                f"tracks on maze3d only (dataset {self.data.dataset!r})"
            )

        self.sampler = run.sampler()
        rng_prefill, self._rng_generate = jax.random.split(jax.random.PRNGKey(options.seed))
        begin = time.perf_counter()
        self._context_cache = self.sampler.prefill(
            inputs.model_frames(context, model_config)[None],
            inputs.model_actions(context, model_config)[None],
            rng_prefill,
        )
        jax.block_until_ready(self._context_cache)
        self.prefill_seconds = time.perf_counter() - begin
        self.restart()
        begin = time.perf_counter()  # compile the unit on a throw-away call, as rollouts do
        actions, _ = self._unit_actions(self.controls.names[0])
        cache = self.run.model.reserve(self._cache, self.unit)
        jax.block_until_ready(self.sampler.sample_unit(cache, actions, self._rng_generate, 0))
        self.compile_seconds = time.perf_counter() - begin
        log(
            f"play: {model_config.mixer} step {run.step}, {options.context} context frames of "
            f"{self.split} episode {options.episode}; prefill {self.prefill_seconds:.2f} s, "
            f"compile {self.compile_seconds:.2f} s"
        )

    # ---- setup ------------------------------------------------------------------------------

    def _read_episode(self) -> tuple[dict, int]:
        from lssvwm.data import sources

        model_config = self.run.model_config
        fields = ("frames", "actions", "position", *inputs.episode_fields(model_config))
        source, present = loading.open_episodes(self.data, self.split, tuple(dict.fromkeys(fields)))
        inputs.check_fields_present(model_config, present, f"split {self.split!r}")
        count = source.index.num_episodes
        if not 0 <= self.options.episode < count:
            raise PlayerError(
                f"--episode={self.options.episode} is out of range: split {self.split!r} has "
                f"{count} episodes"
            )
        episode = sources.read_episode(source, self.options.episode)
        return episode, int(source.index.episode_ids[self.options.episode])

    def _check_context(self, length: int) -> None:
        context, start = self.options.context, self.options.start
        if context < 1 or start < 0 or start + context > length:
            raise PlayerError(
                f"a context of {context} frames from frame {start} does not fit the episode "
                f"({length} frames)"
            )
        if context % self.unit:
            raise PlayerError(
                f"--context={context} must be a whole number of the model's unit of "
                f"{self.unit} frames"
            )

    # ---- playing ----------------------------------------------------------------------------

    def restart(self) -> None:
        """Back to the state right after the context; the walked path is forgotten."""
        self._cache = self._context_cache
        self._pose = None if self.context_poses_T3 is None else self.context_poses_T3[-1]
        self.frames: list[np.ndarray] = []  # uint8 [H, W, 3] each
        self.truths: list[np.ndarray] = []
        self.path: list = []  # per generated frame: the action (int) or pose (float32 [3])
        self.poses: list[np.ndarray] = []  # the tracked camera per frame (maze3d)
        self.resets: list[int] = []  # frame indices before which the memory was reset
        self.per_frame_seconds: list[float] = []
        self._reset_pending = False
        self._frame_clock: collections.deque = collections.deque(maxlen=FPS_WINDOW)

    def reset_memory(self) -> None:
        """Resets the memory (`options.reset_scope`) before the next generated frame."""
        self._reset_pending = True

    def _unit_actions(self, control: str):
        """(the model's actions [1, U, ...] for pressing `control`, [Step] per frame)."""
        steps, pose = [], self._pose
        for _ in range(self.unit):
            steps.append(self.controls.apply(control, pose))
            pose = steps[-1].pose_3
        model_config = self.run.model_config
        if self.controls.kind == "actions":
            conditioning = np.array([s.conditioning for s in steps], np.int32)
        else:
            conditioning = np.stack([s.conditioning for s in steps]).astype(np.float32)
        if inputs.needs_geometry(model_config):
            from lssvwm.data import maze_render

            poses = np.stack([s.pose_3 for s in steps])
            eye_height = self.view.camera.eye_height
            fields = {
                self.run.action_field: conditioning,
                "camera_to_world": maze_render.camera_to_world(poses, eye_height),
                "intrinsics": self._intrinsics,
            }
            conditioning = inputs.model_actions(fields, model_config)
        return jnp.asarray(conditioning)[None], steps

    def step(self, control: str) -> list[PlayFrame]:
        """Generates one unit with `control` pressed; returns its frames."""
        actions, steps = self._unit_actions(control)
        model = self.run.model
        first = len(self.frames)
        if self._reset_pending:
            mask = jnp.ones((1,), bool)
            self._cache = model.reset_cache(self._cache, mask, scope=self.options.reset_scope)
            self.resets.append(first)
            self._reset_pending = False
        cache = model.reserve(self._cache, self.unit)  # growing (full-causal) caches only
        begin = time.perf_counter()
        frames_U, cache = self.sampler.sample_unit(
            cache, actions, self._rng_generate, first // self.unit
        )
        frames_U = np.asarray(frames_U)
        jax.block_until_ready(cache)
        seconds = (time.perf_counter() - begin) / self.unit
        self._cache = cache
        state_bytes = cache_nbytes(cache)
        generated = model_range_to_uint8(inputs.rgb_of(frames_U[0]))
        out = []
        for i, step in enumerate(steps):
            truth = None
            if self.view is not None:
                truth = self.view.render(step.pose_3)
                self.truths.append(truth)
                self.poses.append(step.pose_3)
            self.frames.append(generated[i])
            self.path.append(step.conditioning)
            self.per_frame_seconds.append(seconds)
            self._frame_clock.append(time.perf_counter())
            index = first + i
            out.append(
                PlayFrame(generated[i], truth, index, seconds, state_bytes, control, step.blocked)
            )
        self._pose = steps[-1].pose_3
        return out

    # ---- figures ----------------------------------------------------------------------------

    @property
    def frame_count(self) -> int:
        return len(self.frames)

    @property
    def state_bytes(self) -> int:
        return cache_nbytes(self._cache)

    @property
    def fps(self) -> float | None:
        """Frames per second over the last FPS_WINDOW frames (None before two)."""
        if len(self._frame_clock) < 2:
            return None
        span = self._frame_clock[-1] - self._frame_clock[0]
        return (len(self._frame_clock) - 1) / span if span > 0 else None

    def map_HWC(self) -> np.ndarray | None:
        """The maze3d top-down map with the context's and the walked path (else None)."""
        if self.view is None:
            return None
        walked = np.stack(self.poses) if self.poses else np.zeros((0, 3), np.float32)
        return self.view.draw_map(self.context_poses_T3, walked)

    def context_truth_HWC(self) -> np.ndarray:
        """The last context frame (what the page shows before the first press)."""
        return self.context_frames_THWC[-1]

    def path_array(self) -> np.ndarray:
        """The walked path as rollout reads it: actions int32 [N] or poses float32 [N, 3]."""
        if self.controls.kind == "actions":
            return np.asarray(self.path, np.int32).reshape(-1)
        return np.asarray(self.path, np.float32).reshape(-1, 3)
