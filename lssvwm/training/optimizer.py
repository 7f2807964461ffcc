"""The optimizer of a config's `optimizer` section: AdamW, linear warm-up + cosine decay, clipping.

    tx, schedule = make_optimizer(OptimizerConfig.from_mapping(config.optimizer), total_steps)

Fields of the section (`default_config()`):
  learning_rate   peak learning rate, reached after `warmup_steps`
  warmup_steps    linear warm-up from 0 (int)
  end_fraction    the cosine ends at learning_rate * end_fraction at `total_steps`
  b1, b2, eps     Adam moments
  weight_decay    decoupled (AdamW); applied to matrices only (ndim >= 2): biases, norm scales
                  and embeddings of scalars are not shrunk toward 0
  grad_clip       global-norm clipping threshold (0: off)
  ema_decay       decay of the parameter EMA kept beside the weights (see ema.py; 0: EMA = weights)
"""

from __future__ import annotations

import dataclasses

import jax
import ml_collections
import optax

from lssvwm.config_schema import ConfigError, parse_section, section_dict


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """The validated `optimizer` section (fields: the module docstring)."""

    learning_rate: float = 1e-3
    warmup_steps: int = 100
    end_fraction: float = 0.1
    b1: float = 0.9
    b2: float = 0.99
    eps: float = 1e-8
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema_decay: float = 0.999

    @classmethod
    def from_mapping(cls, mapping) -> OptimizerConfig:
        return parse_section(cls, mapping, "optimizer")

    def __post_init__(self):
        if self.learning_rate <= 0:
            raise ConfigError("optimizer.learning_rate", f"must be > 0, got {self.learning_rate}")
        if self.warmup_steps < 0:
            raise ConfigError("optimizer.warmup_steps", f"must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.end_fraction <= 1:
            raise ConfigError(
                "optimizer.end_fraction", f"must be in [0, 1], got {self.end_fraction}"
            )
        if not 0 <= self.ema_decay < 1:
            raise ConfigError("optimizer.ema_decay", f"must be in [0, 1), got {self.ema_decay}")
        if self.grad_clip < 0:
            raise ConfigError("optimizer.grad_clip", f"must be >= 0, got {self.grad_clip}")


def default_config() -> ml_collections.ConfigDict:
    """The default `optimizer` section of a config file."""
    return ml_collections.ConfigDict(section_dict(OptimizerConfig()))


def learning_rate_schedule(section: OptimizerConfig, total_steps: int) -> optax.Schedule:
    """Linear warm-up to the peak, then cosine decay to `end_fraction` of it at `total_steps`."""
    warmup = int(section.warmup_steps)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=section.learning_rate,
        warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1),
        end_value=section.learning_rate * section.end_fraction,
    )


def _decay_mask(params):
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(
    section: OptimizerConfig, total_steps: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """(optax transformation, learning-rate schedule) for the `optimizer` section (an
    OptimizerConfig, or a mapping parsed into one)."""
    section = OptimizerConfig.from_mapping(section)
    schedule = learning_rate_schedule(section, total_steps)
    parts = []
    if section.grad_clip > 0:
        parts.append(optax.clip_by_global_norm(section.grad_clip))
    parts.append(
        optax.adamw(
            schedule,
            b1=section.b1,
            b2=section.b2,
            eps=section.eps,
            weight_decay=section.weight_decay,
            mask=_decay_mask,
        )
    )
    return optax.chain(*parts), schedule
