"""SPMD scale-out: the device mesh, train-state and batch shardings (see mesh.py), and multi-host
start-up (see distributed.py)."""

from lssvwm.parallel import distributed
from lssvwm.parallel.mesh import (
    DEFAULT_RULES,
    MESH_AXES,
    MeshConfig,
    Parallel,
    default_config,
    mesh_shape,
)

__all__ = [
    "DEFAULT_RULES",
    "MESH_AXES",
    "MeshConfig",
    "Parallel",
    "default_config",
    "distributed",
    "mesh_shape",
]
