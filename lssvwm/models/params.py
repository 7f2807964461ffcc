"""Parameter counts, per component, and the layer count that meets a parameter budget.

The paper compares every mixer at the same parameter count by changing the number of layers;
`depth_for_parameter_budget` does that for any `WorldModelConfig`. Counting uses
`nnx.eval_shape`, so no parameter is materialised.
"""

from __future__ import annotations

import math

import jax
from flax import nnx

from lssvwm.models.config import WorldModelConfig
from lssvwm.models.world_model import WorldModel


def _param_count(module: nnx.Module | None) -> int:
    if module is None:
        return 0
    return int(sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(nnx.state(module, nnx.Param))))


def abstract_model(config: WorldModelConfig) -> WorldModel:
    """The model with shapes only (no memory, no compute)."""
    return nnx.eval_shape(lambda: WorldModel(config, rngs=nnx.Rngs(0)))


def parameter_report(model_or_config) -> dict[str, int]:
    """Parameter counts: total, per top-level component and per sub-layer kind of the blocks."""
    model = (
        abstract_model(model_or_config)
        if isinstance(model_or_config, WorldModelConfig)
        else model_or_config
    )
    report = {
        "total": _param_count(model),
        "embed": _param_count(model.embed),
        "conditioning": _param_count(model.conditioning),
        "final": _param_count(model.final),
        "blocks": sum(_param_count(block) for block in model.blocks),
    }
    for part in ("ssm", "attention", "mlp", "modulation"):
        report[f"blocks.{part}"] = sum(_param_count(getattr(block, part)) for block in model.blocks)
    report["per_block"] = report["blocks"] // max(len(model.blocks), 1)
    return report


def count_parameters(config: WorldModelConfig) -> int:
    return parameter_report(config)["total"]


def depth_for_parameter_budget(config: WorldModelConfig, budget: int) -> int:
    """The layer count (>= 1) whose total parameter count is closest to `budget`."""
    if budget < 1:
        raise ValueError(f"parameter budget must be >= 1, got {budget}")
    one = count_parameters(config.replace(depth=1))
    per_layer = count_parameters(config.replace(depth=2)) - one
    base = one - per_layer
    estimate = max(1, round((budget - base) / per_layer))
    return min(
        {max(1, estimate - 1), estimate, estimate + 1},
        key=lambda depth: (abs(base + depth * per_layer - budget), depth),
    )
