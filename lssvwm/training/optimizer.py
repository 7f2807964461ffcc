"""The optimizer of a config's `optimizer` section: AdamW, linear warm-up + cosine decay, clipping.

    tx, schedule = make_optimizer(config.optimizer, total_steps)

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

import jax
import ml_collections
import optax

_FIELDS = (
    "learning_rate",
    "warmup_steps",
    "end_fraction",
    "b1",
    "b2",
    "eps",
    "weight_decay",
    "grad_clip",
    "ema_decay",
)


def default_config() -> ml_collections.ConfigDict:
    """The default `optimizer` section of a config file."""
    return ml_collections.ConfigDict(
        dict(
            learning_rate=1e-3,
            warmup_steps=100,
            end_fraction=0.1,
            b1=0.9,
            b2=0.99,
            eps=1e-8,
            weight_decay=0.01,
            grad_clip=1.0,
            ema_decay=0.999,
        )
    )


def check_config(section) -> None:
    """Raises a ValueError naming a missing, unknown or out-of-range field."""
    keys = set(section.keys())
    missing, unknown = sorted(set(_FIELDS) - keys), sorted(keys - set(_FIELDS))
    if missing or unknown:
        raise ValueError(
            f"optimizer section: missing {missing}, unknown {unknown} (fields: {list(_FIELDS)})"
        )
    if section.learning_rate <= 0:
        raise ValueError(f"optimizer.learning_rate must be > 0, got {section.learning_rate}")
    if section.warmup_steps < 0 or int(section.warmup_steps) != section.warmup_steps:
        raise ValueError(f"optimizer.warmup_steps must be an int >= 0, got {section.warmup_steps}")
    if not 0 <= section.end_fraction <= 1:
        raise ValueError(f"optimizer.end_fraction must be in [0, 1], got {section.end_fraction}")
    if not 0 <= section.ema_decay < 1:
        raise ValueError(f"optimizer.ema_decay must be in [0, 1), got {section.ema_decay}")
    if section.grad_clip < 0:
        raise ValueError(f"optimizer.grad_clip must be >= 0, got {section.grad_clip}")


def learning_rate_schedule(section, total_steps: int) -> optax.Schedule:
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
    section, total_steps: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """(optax transformation, learning-rate schedule) for the `optimizer` section."""
    check_config(section)
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
