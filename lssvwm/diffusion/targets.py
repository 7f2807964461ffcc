"""Prediction targets and their conversions (x_t = alpha x0 + sigma eps, alpha^2 + sigma^2 = 1).

    v    = alpha * eps - sigma * x0          (default: well scaled at every noise level)
    eps  = the noise
    x0   = the clean frame

`training_target` gives the regression target of a noised frame; `x0_and_eps` turns a network
output of any target back into estimates of both x0 and eps (what a sampler needs). alpha and
sigma broadcast against the frames: pass them as [b, t, 1, 1, 1] (see `per_frame`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lssvwm.diffusion.config import TARGETS

# eps from an x0 prediction divides by sigma, x0 from an eps prediction by alpha; both vanish at
# one end of the schedule, where this floor keeps the estimate finite (and the guarded end is
# never sampled: the sampler never evaluates t = 0, and alpha(1) > 0 for a finite logsnr_min).
_FLOOR = 1e-6


def per_frame(a_BT: jax.Array) -> jax.Array:
    """[b, t] -> [b, t, 1, 1, 1], to broadcast a per-frame scalar against [b, t, H, W, C]."""
    return a_BT[..., None, None, None]


def training_target(x0, eps, alpha, sigma, target: str) -> jax.Array:
    """The regression target for x_t = alpha x0 + sigma eps."""
    _check(target)
    if target == "v":
        return alpha * eps - sigma * x0
    if target == "eps":
        return eps
    return x0


def x0_and_eps(output, x_t, alpha, sigma, target: str) -> tuple[jax.Array, jax.Array]:
    """(x0 estimate, eps estimate) from a network `output` for the noised input `x_t`."""
    _check(target)
    if target == "v":
        # Inverting [x_t; v] = [[alpha, sigma], [-sigma, alpha]] [x0; eps] (a rotation).
        return alpha * x_t - sigma * output, sigma * x_t + alpha * output
    if target == "eps":
        return (x_t - sigma * output) / jnp.maximum(alpha, _FLOOR), output
    return output, (x_t - alpha * output) / jnp.maximum(sigma, _FLOOR)


def _check(target: str) -> None:
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
