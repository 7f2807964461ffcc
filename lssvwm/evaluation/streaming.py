"""Streaming generation for rollouts and evaluation: prefill, then unit by unit, timed.

    stream = stream_generate(sampler, context_frames, context_actions, actions, rng,
                             reset_policy=NEVER_RESET, progress=FrameProgress(n))
    stream.frames            float32 [b, N, H, W, C] in [-1, 1]
    stream.per_frame_seconds [N]: each unit's wall time (blocked until ready) / frames per unit
    stream.cache             the cache after the last committed frame

`progress(done, seconds_per_frame)` is called when generation starts (done = 0) and after each
unit; `lssvwm.common.progress.FrameProgress` logs it.

The context enters through the sampler's parallel prefill; every later unit is one jitted call
of `Sampler.sample_unit` (DDIM steps against the cache, then the commit of the final frames).
The unit function is compiled on a throw-away call before the clock starts (its time is
`compile_seconds`), so the per-frame times measure the model. Growing (full-causal) caches are
given room for all N frames up front (`WorldModel.reserve`), so their per-frame cost is that of
the final capacity while their bytes grow with N. Before each unit the reset policy may reset
some streams (`lssvwm.evaluation.reset`).

What becomes the history of later units (`history`, a memory probe beside the rollout):
  "generated"  the generated frames (an autoregressive rollout; the default)
  "truth"      the ground truth `truth_frames` [b, N, H, W, C] (teacher forcing: each unit is
               predicted from the true past, so errors do not compound)
  "blind"      pure noise (noise level 1): the model is told the path's actions but nothing of
               the frames along it, so each generated frame must come from what the model kept
               of the context -- in its attention window only while the context is still in
               it, afterwards only in its recurrent (SSM) state or spatial store (which does
               not store frames fed as noise). Isolates memory from drift.
  "oracle_depth"  RGB-D models: the generated frames with the true depth channel of
               `truth_frames` (for analysis: a spatial memory written with exact geometry
               instead of the depth the model predicted itself)
Outside "generated" each unit is predicted without committing it (`Sampler.predict_unit`),
then the history frames are committed (`Sampler.commit_unit`); the unit's time covers both.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from lssvwm.diffusion import Sampler
from lssvwm.evaluation.reset import NEVER_RESET, ResetPolicy
from lssvwm.models import cache_nbytes

HISTORIES = ("generated", "truth", "blind", "oracle_depth")
_NEEDS_TRUTH = ("truth", "oracle_depth")


@dataclasses.dataclass
class Stream:
    frames: np.ndarray  # float32 [b, N, H, W, C] in [-1, 1]
    per_frame_seconds: list[float]
    compile_seconds: float
    prefill_seconds: float
    cache: object
    cache_bytes_after_prefill: int
    resets: list[int]  # generated-frame indices before which some stream was reset

    @property
    def cache_bytes(self) -> int:
        return cache_nbytes(self.cache)


def _check_inputs(sampler: Sampler, context_frames, context_actions, actions):
    if context_frames.ndim != 5:
        raise ValueError(f"context frames must be [b, t, H, W, C], got {context_frames.shape}")
    b, n = context_frames.shape[:2]
    for name, value in (("context actions", context_actions), ("actions", actions)):
        if value.shape[0] != b:
            raise ValueError(f"{name} have batch {value.shape[0]}, the context frames {b}")
    if context_actions.shape[1] != n:
        raise ValueError(
            f"{n} context frames but {context_actions.shape[1]} context actions (one per frame)"
        )
    if actions.shape[1] < 1 or actions.shape[1] % sampler.unit:
        raise ValueError(
            f"can only generate a positive whole number of units of {sampler.unit} frames, got "
            f"{actions.shape[1]} actions"
        )


def _history_unit_fn(sampler: Sampler, history: str, truth_frames, actions_shape, context_shape):
    """unit_fn(cache, actions, start, rng, index) -> (frames [b, U, H, W, C], next cache)."""
    if history not in HISTORIES:
        raise ValueError(f"unknown history {history!r}; known: {HISTORIES}")
    if history == "oracle_depth" and context_shape[-1] != 4:
        raise ValueError(
            f'history="oracle_depth" needs an RGB-D model, this one has {context_shape[-1]} '
            "channels"
        )
    if history in _NEEDS_TRUTH:
        if truth_frames is None:
            raise ValueError(f"history={history!r} needs the ground-truth frames (truth_frames)")
        truth_frames = jnp.asarray(truth_frames, jnp.float32)
        want = (*actions_shape[:2], *context_shape[2:])
        if truth_frames.shape != want:
            raise ValueError(f"truth frames have shape {truth_frames.shape}, want {want}")
    unit = sampler.unit

    def unit_fn(cache, actions, start, rng, index):
        actions_U = actions[:, start : start + unit]
        if history == "generated":
            return sampler.sample_unit(cache, actions_U, rng, index)
        frames_U = sampler.predict_unit(cache, actions_U, rng, index)
        if history == "truth":
            fed = truth_frames[:, start : start + unit]
            return frames_U, sampler.commit_unit(cache, fed, actions_U, rng, index)
        if history == "oracle_depth":
            true_depth = truth_frames[:, start : start + unit, ..., 3:]
            fed = jnp.concatenate([frames_U[..., :3], true_depth], axis=-1)
            return frames_U, sampler.commit_unit(cache, fed, actions_U, rng, index)
        # blind: pure noise of the unit's shape (commit_unit draws it at level 1)
        fed = jnp.zeros_like(frames_U)
        return frames_U, sampler.commit_unit(cache, fed, actions_U, rng, index, noise_level=1.0)

    return unit_fn


def stream_generate(
    sampler: Sampler,
    context_frames,
    context_actions,
    actions,
    rng: jax.Array,
    *,
    reset_policy: ResetPolicy = NEVER_RESET,
    progress: Callable[[int, float], None] | None = None,
    history: str = "generated",
    truth_frames=None,
) -> Stream:
    """Prefills `context_frames` [b, n, H, W, C] (in [-1, 1]) with `context_actions` [b, n, ...],
    then generates one frame per entry of `actions` [b, N, ...], with `history` (and, for
    "truth" and "oracle_depth", `truth_frames` [b, N, H, W, C] in [-1, 1]) saying what later
    units see of the earlier ones (module docstring)."""
    context_frames = jnp.asarray(context_frames, jnp.float32)
    context_actions, actions = jnp.asarray(context_actions), jnp.asarray(actions)
    _check_inputs(sampler, context_frames, context_actions, actions)
    unit_fn = _history_unit_fn(sampler, history, truth_frames, actions.shape, context_frames.shape)
    batch, num_frames, unit = context_frames.shape[0], actions.shape[1], sampler.unit
    model = sampler.model
    rng_prefill, rng_generate = jax.random.split(rng)

    begin = time.perf_counter()
    cache = sampler.prefill(context_frames, context_actions, rng_prefill)
    jax.block_until_ready(cache)
    prefill_seconds = time.perf_counter() - begin
    cache_bytes_after_prefill = cache_nbytes(cache)
    cache = model.reserve(cache, num_frames)  # growing caches only; else unchanged

    begin = time.perf_counter()  # compile (and run once) on a result that is thrown away
    jax.block_until_ready(unit_fn(cache, actions, 0, rng_generate, 0))
    compile_seconds = time.perf_counter() - begin

    units, seconds, resets = [], [], []
    if progress is not None:
        progress(0, 0.0)
    for index, start in enumerate(range(0, num_frames, unit)):
        mask = reset_policy(start, batch)
        if mask is not None:
            mask = np.asarray(mask, bool)
            if mask.shape != (batch,):
                raise ValueError(f"reset policy gave a mask of shape {mask.shape}, want {batch}")
            if mask.any():
                scope = getattr(reset_policy, "scope", "all")
                cache = model.reset_cache(cache, jnp.asarray(mask), scope=scope)
                resets.append(start)
        begin = time.perf_counter()
        frames_U, cache = unit_fn(cache, actions, start, rng_generate, index)
        frames_U = np.asarray(frames_U)  # waits for the unit (and brings it to the host)
        jax.block_until_ready(cache)
        per_frame = (time.perf_counter() - begin) / unit
        seconds.extend([per_frame] * unit)
        units.append(frames_U)
        if progress is not None:
            progress(start + unit, per_frame)
    return Stream(
        frames=np.concatenate(units, axis=1),
        per_frame_seconds=seconds,
        compile_seconds=compile_seconds,
        prefill_seconds=prefill_seconds,
        cache=cache,
        cache_bytes_after_prefill=cache_bytes_after_prefill,
        resets=resets,
    )
