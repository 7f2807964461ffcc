"""World models assembled from `lssvwm.nn`: LSSVWM, causal transformers, Mamba-2 variants."""

from lssvwm.models.config import MIXERS, WorldModelConfig
from lssvwm.models.params import (
    abstract_model,
    count_parameters,
    depth_for_parameter_budget,
    parameter_report,
)
from lssvwm.models.world_model import StreamCache, WorldModel, cache_nbytes

__all__ = [
    "MIXERS",
    "StreamCache",
    "WorldModel",
    "WorldModelConfig",
    "abstract_model",
    "cache_nbytes",
    "count_parameters",
    "depth_for_parameter_budget",
    "parameter_report",
]
