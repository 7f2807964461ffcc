"""`DiffusionConfig`: the validated schema of a config file's `diffusion` section.

A config file sets `config.diffusion = lssvwm.diffusion.default_config()` (an ml_collections
ConfigDict, overridable from the command line) and the trainer turns it into this frozen,
hashable dataclass with `DiffusionConfig.from_mapping` -- unknown keys and bad values raise a
ValueError naming the field, so a typo never trains silently with a default.

Noise level t in [0, 1] is the model's per-frame conditioning input: t = 0 is the clean frame,
t = 1 pure noise (see schedules.py for alpha_t, sigma_t).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import ml_collections

from lssvwm.config_schema import parse_section

SCHEDULES = ("cosine", "linear_logsnr", "ddpm_linear")
TARGETS = ("v", "eps", "x0")
NOISE_DISTRIBUTIONS = ("uniform", "logit_normal", "power")


@dataclasses.dataclass(frozen=True)
class DiffusionConfig:
    """Hyper-parameters of the diffusion-forcing objective and the sampler.

    schedule / logsnr_min / logsnr_max / logsnr_shift: the variance-preserving noise schedule as
      log-SNR(t), clipped to [logsnr_min, logsnr_max] and then shifted by `logsnr_shift` nats
      (negative: noisier at every t, as for high-resolution frames in "simple diffusion").
    target: what the network predicts: "v" (alpha eps - sigma x0), "eps" or "x0".
    noise_distribution: how training draws a noisy frame's level t (independently per frame, or
      per chunk with `chunk_synchronous`): "uniform"; "logit_normal" (t = sigmoid(N(mean, std)),
      skewed toward high noise by a positive `noise_logit_mean`); "power" (density ~ t^(k-1) for
      k = `noise_power`, k > 1 skews toward high noise).
    chunk_synchronous: with the chunked attention window (model unit c > 1), all frames of a
      chunk share one level, so no frame reads a cleaner later frame of its own chunk -- which is
      also how the sampler generates (a chunk at a time).
    clean_prefix_prob / clean_prefix_min_fraction: long-context training (paper: 0.5 and 0.5):
      with this probability a sample keeps a clean prefix *longer than* this fraction of the
      window (whole chunks; at least one noisy unit left); the loss covers the noisy frames only.
    blind_suffix_prob: with this probability a sample *with* a clean prefix has every frame after
      it at level 1 (pure noise), so its loss asks for frames from the prefix and the actions
      alone -- as generating far ahead does, and the memory probe's blind protocol. Under
      independent levels a frame almost always has a partly visible frame just before it (a level
      of 0.9 still shows a flat-coloured 16x16 view), so next-frame copying explains most of the
      loss and retrieving a view from far back is a rare signal; blind suffixes make it common.
      0 (default): plain clean-prefix diffusion forcing, the paper's recipe.
    context_noise: the level c at which the sampler feeds context and committed frames back
      (0: clean). Training gives clean-prefix frames levels uniform in [0, c] to match.
    sampler_steps / sampler_eta / clip_x0: DDIM steps per generated unit, DDIM's eta (0:
      deterministic, 1: ancestral-like), clipping the x0 estimate to the frame range [-1, 1].
    """

    schedule: str = "cosine"
    logsnr_min: float = -15.0
    logsnr_max: float = 15.0
    logsnr_shift: float = 0.0
    target: str = "v"
    noise_distribution: str = "uniform"
    noise_logit_mean: float = 0.0
    noise_logit_std: float = 1.0
    noise_power: float = 1.0
    chunk_synchronous: bool = True
    clean_prefix_prob: float = 0.5
    clean_prefix_min_fraction: float = 0.5
    blind_suffix_prob: float = 0.0
    context_noise: float = 0.0
    sampler_steps: int = 20
    sampler_eta: float = 0.0
    clip_x0: bool = True

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> DiffusionConfig:
        """From a dict or ConfigDict (`config.diffusion`); unknown keys raise a ValueError."""
        return parse_section(cls, mapping, "diffusion")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> DiffusionConfig:
        return dataclasses.replace(self, **changes)

    def __post_init__(self):
        _one_of("schedule", self.schedule, SCHEDULES)
        _one_of("target", self.target, TARGETS)
        _one_of("noise_distribution", self.noise_distribution, NOISE_DISTRIBUTIONS)
        for name in (
            "logsnr_min",
            "logsnr_max",
            "logsnr_shift",
            "noise_logit_mean",
            "noise_logit_std",
            "noise_power",
            "clean_prefix_prob",
            "clean_prefix_min_fraction",
            "blind_suffix_prob",
            "context_noise",
            "sampler_eta",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"diffusion.{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"diffusion.{name} must be finite, got {value!r}")
        for name in ("chunk_synchronous", "clip_x0"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"diffusion.{name} must be a bool, got {getattr(self, name)!r}")
        if not self.logsnr_min < self.logsnr_max:
            raise ValueError(
                f"diffusion.logsnr_min ({self.logsnr_min}) must be below logsnr_max "
                f"({self.logsnr_max})"
            )
        if self.noise_logit_std <= 0:
            raise ValueError(f"diffusion.noise_logit_std must be > 0, got {self.noise_logit_std}")
        if self.noise_power <= 0:
            raise ValueError(f"diffusion.noise_power must be > 0, got {self.noise_power}")
        if not 0.0 <= self.clean_prefix_prob <= 1.0:
            raise ValueError(
                f"diffusion.clean_prefix_prob must be in [0, 1], got {self.clean_prefix_prob}"
            )
        if not 0.0 <= self.blind_suffix_prob <= 1.0:
            raise ValueError(
                f"diffusion.blind_suffix_prob must be in [0, 1], got {self.blind_suffix_prob}"
            )
        if not 0.0 <= self.clean_prefix_min_fraction < 1.0:
            raise ValueError(
                "diffusion.clean_prefix_min_fraction must be in [0, 1), got "
                f"{self.clean_prefix_min_fraction}"
            )
        if not 0.0 <= self.context_noise < 1.0:
            raise ValueError(f"diffusion.context_noise must be in [0, 1), got {self.context_noise}")
        if isinstance(self.sampler_steps, bool) or not isinstance(self.sampler_steps, int):
            raise ValueError(f"diffusion.sampler_steps must be an int, got {self.sampler_steps!r}")
        if self.sampler_steps < 1:
            raise ValueError(f"diffusion.sampler_steps must be >= 1, got {self.sampler_steps}")
        if self.sampler_eta < 0:
            raise ValueError(f"diffusion.sampler_eta must be >= 0, got {self.sampler_eta}")


def _one_of(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"diffusion.{name} must be one of {choices}, got {value!r}")


def default_config() -> ml_collections.ConfigDict:
    """The default `diffusion` section of a config file (see `DiffusionConfig` for each field)."""
    return ml_collections.ConfigDict(DiffusionConfig().to_dict())
