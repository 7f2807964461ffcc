"""Autoregressive sampling with a streaming world model: prefill a context, generate units.

    sampler = Sampler(model, config)                     # config: DiffusionConfig
    cache = sampler.prefill(context_frames, context_actions, rng)
    frames, cache = sampler.generate(cache, actions_BN, rng)          # N frames, unit by unit
    frames, cache, seconds = sampler.generate(..., timings=True)      # seconds per unit
    frames_U = sampler.predict_unit(cache, actions_U, rng, i)          # unit i, not committed
    cache = sampler.commit_unit(cache, truth_U, actions_U, rng, i)     # history of given frames

The context enters through the model's parallel pass (`model.prefill`), never a loop of steps.
Each unit of U = `model.unit` frames (1; the chunk in the chunked window) is one jitted call:
DDIM's denoising steps in a `lax.fori_loop`, each a read-only `model.step` against the cache,
then `model.commit` of the final frames -- the only pass whose candidate cache is kept. With
context noise c > 0 (`config.context_noise`), the context and the committed frames are fed at
level c (noised accordingly), as clean-prefix training does with levels in [0, c]
(`lssvwm.diffusion.feedback`).

The cache is a pytree argument of the jitted unit function, so per-unit timings measure the
model, not Python. The compiled functions are keyed on the model's graph and the config (static
arguments), so a new `Sampler` of the same model (e.g. after more training) reuses them. The
sampler holds a snapshot of the parameters taken at construction.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
from flax import nnx

from lssvwm.diffusion.config import DiffusionConfig
from lssvwm.diffusion.ddim import ddim_sample
from lssvwm.diffusion.feedback import feed_back


@functools.partial(jax.jit, static_argnums=(0, 1))
def _prefill(graphdef, config, state, frames, actions, rng, cache):
    model = nnx.merge(graphdef, state)
    frames, level = feed_back(rng, frames, config)
    _, cache = model.prefill(frames, level, actions, cache)
    return cache


def _unit_rngs(rng, unit_index):
    """(DDIM initial noise, DDIM steps, commit) keys of unit `unit_index`."""
    return jax.random.split(jax.random.fold_in(rng, unit_index), 3)


def _predict(model, config, cache, actions_U, rng_init, rng_steps):
    """x0 [b, U, H, W, C] of the next unit by DDIM against the cache (the cache is unchanged)."""
    batch, unit = actions_U.shape[0], model.unit
    shape = (batch, unit, *model.config.image_size, model.config.channels)

    def denoise(x, t):
        output, _candidate = model.step(x, jnp.full((batch, unit), t), actions_U, cache)
        return output  # the candidate of a denoising pass is dropped (dead code under jit)

    return ddim_sample(denoise, jax.random.normal(rng_init, shape, jnp.float32), rng_steps, config)


def _sample_unit(graphdef, config, state, cache, actions_U, rng, unit_index):
    """One unit: x0 [b, U, H, W, C] by DDIM against the cache, and the cache with it committed."""
    model = nnx.merge(graphdef, state)
    rng_init, rng_steps, rng_commit = _unit_rngs(rng, unit_index)
    x0 = _predict(model, config, cache, actions_U, rng_init, rng_steps)
    fed_back, level = feed_back(rng_commit, x0, config)
    return x0, model.commit(fed_back, actions_U, cache, noise_level_BU=level)


_sample_unit_jit = jax.jit(_sample_unit, static_argnums=(0, 1))
_sample_unit_donating = jax.jit(_sample_unit, static_argnums=(0, 1), donate_argnums=(3,))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _predict_unit(graphdef, config, state, cache, actions_U, rng, unit_index):
    """The x0 `_sample_unit` draws for this unit, without committing it."""
    rng_init, rng_steps, _ = _unit_rngs(rng, unit_index)
    return _predict(nnx.merge(graphdef, state), config, cache, actions_U, rng_init, rng_steps)


@functools.partial(jax.jit, static_argnums=(0, 1, 8))
def _commit_unit(graphdef, config, state, cache, frames_U, actions_U, rng, unit_index, level):
    """The cache with given frames [b, U, H, W, C] appended as history: fed at the context-noise
    level, as `_sample_unit` feeds back its own frames (`level` None), or noised to `level`
    (1.0: pure noise, a frame the model is told nothing about)."""
    model = nnx.merge(graphdef, state)
    fed_back, level_BU = feed_back(_unit_rngs(rng, unit_index)[2], frames_U, config, level)
    return model.commit(fed_back, actions_U, cache, noise_level_BU=level_BU)


class Sampler:
    """Prefill + jitted unit-by-unit generation for a `WorldModel` (see the module docstring).

    donate_cache: let each unit reuse the previous cache's buffers (rollouts; the cache passed to
      `generate` is then consumed).
    """

    def __init__(self, model, config: DiffusionConfig, *, donate_cache: bool = False):
        if not isinstance(config, DiffusionConfig):
            raise TypeError(
                f"expected a DiffusionConfig (use DiffusionConfig.from_mapping), got "
                f"{type(config).__name__}"
            )
        if model.config.output_channels != model.config.channels:
            raise ValueError(
                "sampling needs a model that predicts its input channels "
                f"({model.config.channels}), got out_channels={model.config.output_channels}"
            )
        self.model = model
        self.config = config
        self.unit = model.unit
        self._graphdef, self._state = nnx.split(model)
        self._unit_fn = _sample_unit_donating if donate_cache else _sample_unit_jit

    def prefill(self, frames_BTHWC, actions, rng, cache=None):
        """The cache after the context frames (parallel pass, at the context-noise level).

        The context is a whole number of units, so later units stay aligned to the chunks.
        `cache` continues an earlier cache instead of starting empty.
        """
        frames_BTHWC = jnp.asarray(frames_BTHWC)
        if frames_BTHWC.ndim != 5:
            raise ValueError(f"context frames must be [b, t, H, W, C], got {frames_BTHWC.shape}")
        if frames_BTHWC.shape[1] % self.unit:
            raise ValueError(
                f"a context of {frames_BTHWC.shape[1]} frames is not a whole number of units of "
                f"{self.unit} frames (the chunked window generates whole chunks)"
            )
        return _prefill(self._graphdef, self.config, self._state, frames_BTHWC, actions, rng, cache)

    def _unit_args(self, cache, actions_U, rng, unit_index):
        """The arguments of the jitted unit functions (model graph and config static)."""
        index = jnp.asarray(unit_index, jnp.int32)
        return self._graphdef, self.config, self._state, cache, actions_U, rng, index

    def sample_unit(self, cache, actions_U, rng, unit_index=0):
        """One unit (jitted): (frames [b, U, H, W, C], cache with them committed)."""
        return self._unit_fn(*self._unit_args(cache, actions_U, rng, unit_index))

    def predict_unit(self, cache, actions_U, rng, unit_index=0):
        """The frames [b, U, H, W, C] `sample_unit` would draw, without committing them."""
        return _predict_unit(*self._unit_args(cache, actions_U, rng, unit_index))

    def commit_unit(self, cache, frames_U, actions_U, rng, unit_index=0, *, noise_level=None):
        """The cache with given frames [b, U, H, W, C] (in [-1, 1]) appended as history, e.g. the
        ground truth (teacher forcing). `noise_level` None: fed back as `sample_unit` feeds its
        own frames (at the context-noise level); a level t in [0, 1]: noised to t first (1.0:
        pure noise -- the model is told nothing about these frames but their actions)."""
        if noise_level is not None and not 0.0 <= noise_level <= 1.0:
            raise ValueError(f"noise_level must be None or in [0, 1], got {noise_level}")
        graphdef, config, state, cache, actions_U, rng, index = self._unit_args(
            cache, actions_U, rng, unit_index
        )
        level = None if noise_level is None else float(noise_level)
        frames_U = jnp.asarray(frames_U)
        return _commit_unit(graphdef, config, state, cache, frames_U, actions_U, rng, index, level)

    def generate(self, cache, actions, rng, *, timings: bool = False):
        """N = actions.shape[1] frames after `cache`, one unit per jitted call.

        Returns (frames [b, N, H, W, C], final cache), plus the seconds of each unit's call
        (blocked until ready) when `timings`.
        """
        num_frames = actions.shape[1]
        if num_frames < 1 or num_frames % self.unit:
            raise ValueError(
                f"can only generate a positive whole number of units of {self.unit} frames, "
                f"got {num_frames} actions"
            )
        cache = self.model.reserve(cache, num_frames)  # growing (full-causal) caches; else same
        units, seconds = [], []
        for index, start in enumerate(range(0, num_frames, self.unit)):
            begin = time.perf_counter()
            frames_U, cache = self.sample_unit(
                cache, actions[:, start : start + self.unit], rng, index
            )
            if timings:
                jax.block_until_ready((frames_U, cache))
                seconds.append(time.perf_counter() - begin)
            units.append(frames_U)
        frames = jnp.concatenate(units, axis=1)
        return (frames, cache, seconds) if timings else (frames, cache)
