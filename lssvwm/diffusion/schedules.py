"""Variance-preserving noise schedules in continuous time t in [0, 1], defined by log-SNR(t).

    x_t = alpha_t * x0 + sigma_t * eps,   alpha_t^2 = sigmoid(logsnr(t)),
                                          sigma_t^2 = sigmoid(-logsnr(t))

so alpha^2 + sigma^2 = 1 at every t, and log-SNR falls monotonically from `logsnr_max` (t = 0)
to `logsnr_min` (t = 1). t = 0 is the data itself: `alpha_sigma(0)` is exactly (1, 0), not the
clipped endpoint, so clean-prefix and committed frames enter the model unchanged.

Schedules (log-SNR before `shift`, clipped to [logsnr_min, logsnr_max]):
  cosine          -2 log tan(a t + b), the cosine schedule of Nichol & Dhariwal in log-SNR form,
                  with a, b chosen so the endpoints are exactly logsnr_max and logsnr_min
  linear_logsnr   logsnr_max + t (logsnr_min - logsnr_max), linear in log-SNR (alpha_t^2 is a
                  sigmoid of t)
  ddpm_linear     DDPM's linear betas in continuous time (beta from 0.1 to 20):
                  -log(expm1(0.1 t + 9.95 t^2)), clipped
`shift` is added after clipping (simple diffusion's resolution shift: negative = noisier).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from lssvwm.diffusion.config import SCHEDULES, DiffusionConfig

_DDPM_BETA_MIN, _DDPM_BETA_MAX = 0.1, 20.0


@dataclasses.dataclass(frozen=True)
class NoiseSchedule:
    """A VP schedule (hashable: usable as a static argument of jitted functions)."""

    kind: str = "cosine"
    logsnr_min: float = -15.0
    logsnr_max: float = 15.0
    shift: float = 0.0

    def __post_init__(self):
        if self.kind not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.kind!r}")
        if not self.logsnr_min < self.logsnr_max:
            raise ValueError(
                f"logsnr_min ({self.logsnr_min}) must be below logsnr_max ({self.logsnr_max})"
            )

    @classmethod
    def from_config(cls, config: DiffusionConfig) -> NoiseSchedule:
        return cls(config.schedule, config.logsnr_min, config.logsnr_max, config.logsnr_shift)

    def log_snr(self, t: jax.Array) -> jax.Array:
        """log(alpha_t^2 / sigma_t^2) at t in [0, 1] (float32, same shape as t)."""
        t = jnp.asarray(t, jnp.float32)
        lo, hi = self.logsnr_min, self.logsnr_max
        if self.kind == "cosine":
            b = math.atan(math.exp(-0.5 * hi))
            a = math.atan(math.exp(-0.5 * lo)) - b
            logsnr = -2.0 * jnp.log(jnp.tan(a * t + b))
        elif self.kind == "linear_logsnr":
            logsnr = hi + t * (lo - hi)
        else:  # ddpm_linear
            integral = _DDPM_BETA_MIN * t + 0.5 * (_DDPM_BETA_MAX - _DDPM_BETA_MIN) * t**2
            # expm1 > 0 for t > 0; at t = 0 the log is +inf and the clip takes logsnr_max.
            logsnr = -jnp.log(jnp.maximum(jnp.expm1(integral), 1e-30))
        return jnp.clip(logsnr, lo, hi) + self.shift

    def alpha_sigma(self, t: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(alpha_t, sigma_t), same shape as t; exactly (1, 0) where t <= 0 (the clean data)."""
        t = jnp.asarray(t, jnp.float32)
        logsnr = self.log_snr(t)
        alpha = jnp.sqrt(jax.nn.sigmoid(logsnr))
        sigma = jnp.sqrt(jax.nn.sigmoid(-logsnr))
        clean = t <= 0
        return jnp.where(clean, 1.0, alpha), jnp.where(clean, 0.0, sigma)
