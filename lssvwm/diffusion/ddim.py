"""DDIM sampling of one unit of frames (Song et al. 2021), in alpha/sigma form, as a fori_loop.

    x0 = ddim_sample(denoise_fn, x_init, rng, config)

`denoise_fn(x, t)` returns the network output (of `config.target`) for frames x at the scalar
level t. The time grid is uniform, t_i = 1 - i / steps; each step turns the output into
estimates (x0, eps) and moves to t_next:

    x_next = alpha_next x0 + sqrt(sigma_next^2 - s^2) eps + s z,
    s = eta (sigma_next / sigma) sqrt(1 - alpha^2 / alpha_next^2),    z ~ N(0, 1)

eta = 0 is the deterministic DDIM (probability-flow) sampler, eta = 1 the DDPM-like ancestral
one. The last step lands on t = 0, where alpha = 1 and sigma = 0: the result is the final x0
estimate itself.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from lssvwm.diffusion.config import DiffusionConfig
from lssvwm.diffusion.schedules import NoiseSchedule
from lssvwm.diffusion.targets import x0_and_eps

_SIGMA_FLOOR = 1e-6


def sampling_times(steps: int) -> jax.Array:
    """The level grid [steps + 1]: 1, 1 - 1/steps, ..., 0."""
    return jnp.linspace(1.0, 0.0, steps + 1, dtype=jnp.float32)


def ddim_update(
    x: jax.Array,
    output: jax.Array,
    t: jax.Array,
    t_next: jax.Array,
    rng: jax.Array,
    config: DiffusionConfig,
) -> tuple[jax.Array, jax.Array]:
    """One DDIM step from level t to t_next < t: (x at t_next, the x0 estimate at t)."""
    schedule = NoiseSchedule.from_config(config)
    alpha, sigma = schedule.alpha_sigma(t)
    alpha_next, sigma_next = schedule.alpha_sigma(t_next)
    x0, eps = x0_and_eps(output, x, alpha, sigma, config.target)
    if config.clip_x0:
        # Frames live in [-1, 1]; keep eps consistent with the clipped x0 for this x.
        x0 = jnp.clip(x0, -1.0, 1.0)
        eps = (x - alpha * x0) / jnp.maximum(sigma, _SIGMA_FLOOR)
    fresh = 0.0
    if config.sampler_eta > 0:
        ratio = jnp.maximum(1.0 - jnp.square(alpha / alpha_next), 0.0)
        fresh = config.sampler_eta * sigma_next / jnp.maximum(sigma, _SIGMA_FLOOR) * jnp.sqrt(ratio)
    direction = jnp.sqrt(jnp.maximum(jnp.square(sigma_next) - jnp.square(fresh), 0.0))
    x_next = alpha_next * x0 + direction * eps
    if config.sampler_eta > 0:
        x_next = x_next + fresh * jax.random.normal(rng, x.shape, x.dtype)
    return x_next, x0


def ddim_sample(
    denoise_fn: Callable[[jax.Array, jax.Array], jax.Array],
    x_init: jax.Array,
    rng: jax.Array,
    config: DiffusionConfig,
) -> jax.Array:
    """`config.sampler_steps` DDIM steps from x_init (noise at t = 1) to the clean frames."""
    steps = config.sampler_steps
    times = sampling_times(steps)

    def body(i, x):
        t, t_next = times[i], times[i + 1]
        output = denoise_fn(x, t)
        x_next, _ = ddim_update(x, output, t, t_next, jax.random.fold_in(rng, i), config)
        return x_next

    return jax.lax.fori_loop(0, steps, body, x_init.astype(jnp.float32))
