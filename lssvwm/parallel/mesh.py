"""The device mesh and the shardings of a train state and a batch, from a config's `mesh` section.

    config.mesh = lssvwm.parallel.default_config()      # data parallel over every device
    config.mesh.axes = {"data": 2, "fsdp": -1}          # 2-way data x FSDP over the rest
    parallel = Parallel.from_config(config.mesh)
    state = parallel.place_train_state(state, tx)       # params/EMA/moments sharded by the rules
    batch = parallel.place_batch(local_batch)           # this process's rows -> a global array
    with parallel.activate():                           # activation constraints use the mesh
        state, metrics = train_step(state, batch)

Axes: `data` splits the batch only; `fsdp` splits the batch *and* the parameters' `embed` axis
(ZeRO-3 style: each device holds 1/fsdp of every matrix, gathered per layer inside the step).
Which parameter and activation axis goes to which mesh axis is the `rules` table of logical names
(lssvwm/nn/partitioning.py lists them), so a new layout is a config change. `-1` in `axes` takes
the devices left over. The same code runs on one CPU, fake CPU devices
(`XLA_FLAGS=--xla_force_host_platform_device_count=8`), a GPU node or a TPU pod slice; with
`distributed=True` every process (one per host) starts with
`lssvwm.parallel.distributed.start(config.mesh)`, before any other JAX call (`python -m
lssvwm.train` does), and feeds only its own rows of the global batch; `coordinator_address`
("HOST:PORT" of process 0), `num_processes` and `process_id` name the processes, or are left
unset where JAX detects the cluster (TPU pods, SLURM).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from ml_collections import config_dict

from lssvwm.config_schema import check_known_keys, parse_section
from lssvwm.nn.partitioning import parameter_specs
from lssvwm.parallel import distributed

MESH_AXES = ("data", "fsdp")
DEFAULT_RULES = (("batch", ("data", "fsdp")), ("embed", "fsdp"))
_TRAIN_STATE_PARAM_TREES = ("params", "ema")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """The validated `mesh` section.

    axes: mesh axis sizes, `data` and `fsdp` (one may be -1: the devices left over).
    rules: (logical axis name, mesh axis or axes) pairs (lssvwm/nn/partitioning.py).
    distributed: start JAX's multi-process runtime before anything else (one process per host).
    coordinator_address / num_processes / process_id: where and who, for
      `jax.distributed.initialize`; all None where JAX detects the cluster (TPU pods, SLURM).
    """

    axes: dict = dataclasses.field(default_factory=lambda: {"data": -1, "fsdp": 1})
    rules: tuple = DEFAULT_RULES
    distributed: bool = False
    coordinator_address: str | None = None
    num_processes: int | None = None
    process_id: int | None = None

    @classmethod
    def from_mapping(cls, mapping) -> MeshConfig:
        """From a config's `mesh` section (None: the defaults); errors name the key."""
        return parse_section(cls, mapping, "mesh")

    def __post_init__(self):
        check_known_keys("mesh.axes", self.axes, MESH_AXES)
        object.__setattr__(self, "axes", dict(self.axes))
        object.__setattr__(
            self, "rules", tuple((name, _as_axis(axis)) for name, axis in self.rules)
        )
        distributed.check_section(self.__dict__)  # the launch keys: lssvwm.parallel.distributed


def default_config() -> ml_collections.ConfigDict:
    """A config file's `mesh` section: plain data parallelism over all devices."""
    return ml_collections.ConfigDict(
        dict(
            axes={"data": -1, "fsdp": 1},
            rules=DEFAULT_RULES,
            distributed=False,
            coordinator_address=config_dict.placeholder(str),
            num_processes=config_dict.placeholder(int),
            process_id=config_dict.placeholder(int),
        )
    )


def mesh_shape(axes: Mapping[str, int], device_count: int) -> dict[str, int]:
    """Axis sizes with the one `-1` resolved to the devices left over; errors name the problem."""
    unknown = sorted(set(axes) - set(MESH_AXES))
    if unknown:
        raise ValueError(f"unknown mesh axis/axes {unknown}; known: {list(MESH_AXES)}")
    sizes = {name: int(axes.get(name, 1)) for name in MESH_AXES}
    free = [name for name, size in sizes.items() if size == -1]
    if len(free) > 1:
        raise ValueError(f"at most one mesh axis may be -1, got {free}")
    if any(size < 1 for name, size in sizes.items() if name not in free):
        raise ValueError(f"mesh axis sizes must be >= 1 (or one -1), got {dict(axes)}")
    fixed = math.prod(size for size in sizes.values() if size != -1)
    if free:
        if device_count % fixed:
            raise ValueError(f"mesh {dict(axes)} does not divide {device_count} devices")
        sizes[free[0]] = device_count // fixed
    if math.prod(sizes.values()) != device_count:
        raise ValueError(
            f"mesh {sizes} needs {math.prod(sizes.values())} devices, there are {device_count}"
        )
    return sizes


def _spec_fits(spec: P, shape: Sequence[int], mesh: jax.sharding.Mesh, where: str) -> P:
    for dim, axis in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec)), strict=True):
        names = () if axis is None else (axis if isinstance(axis, tuple) else (axis,))
        parts = math.prod(mesh.shape[name] for name in names)
        if dim % parts:
            raise ValueError(
                f"{where}: axis of size {dim} cannot be split {parts} ways over mesh axes "
                f"{names} (spec {spec}); change the mesh or the sharding rules"
            )
    return spec


class Parallel:
    """A mesh plus logical rules: places train states and batches, activates the constraints."""

    def __init__(self, mesh: jax.sharding.Mesh, rules: Sequence[tuple[str, Any]]):
        self.mesh = mesh
        self.rules = tuple((name, _as_axis(axis)) for name, axis in rules)
        self._batch_axes = dict(self.rules).get("batch")

    @classmethod
    def from_config(cls, section, devices: Sequence[jax.Device] | None = None) -> Parallel:
        """The mesh of a `mesh` section (a MeshConfig, a mapping or None: the defaults) over
        `devices` (default: every device of every process; multi-process runs must have started
        the runtime first, `lssvwm.parallel.distributed`)."""
        section = MeshConfig.from_mapping(section)
        if section.distributed and not jax.distributed.is_initialized():
            raise RuntimeError(
                "mesh.distributed is True but the JAX distributed system is not running: call "
                "lssvwm.parallel.distributed.start(config.mesh) before any other JAX call"
            )
        devices = jax.devices() if devices is None else list(devices)
        sizes = mesh_shape(section.axes, len(devices))
        mesh = jax.make_mesh(
            tuple(sizes.values()),
            tuple(sizes),
            axis_types=(jax.sharding.AxisType.Auto,) * len(sizes),
            devices=devices,
        )
        return cls(mesh, section.rules)

    @property
    def batch_parts(self) -> int:
        """How many ways the global batch is split (it must divide by this)."""
        names = self._batch_axes or ()
        names = names if isinstance(names, tuple) else (names,)
        return math.prod(self.mesh.shape[name] for name in names)

    # ---- shardings ----------------------------------------------------------------------------

    def _named(self, spec: P) -> NamedSharding:
        return NamedSharding(self.mesh, spec)

    def train_state_shardings(self, state: Mapping[str, Any], tx: optax.GradientTransformation):
        """NamedShardings for every leaf of a train state: parameters, EMA and the optimizer's
        per-parameter moments by the rules; everything else (step, counters, carried states)
        replicated."""
        is_spec = lambda x: isinstance(x, P)  # noqa: E731
        specs = parameter_specs(state["params"], self.rules)
        spec_leaves = jax.tree.leaves(specs, is_leaf=is_spec)
        param_leaves = jax.tree.leaves(state["params"])
        paths = [jax.tree_util.keystr(p) for p, _ in jax.tree.leaves_with_path(state["params"])]
        for spec, leaf, path in zip(spec_leaves, param_leaves, paths, strict=True):
            _spec_fits(spec, leaf.shape, self.mesh, f"parameter {path}")
        shardings = {}
        for key, value in state.items():
            if key in _TRAIN_STATE_PARAM_TREES:
                shardings[key] = jax.tree.map(self._named, specs, is_leaf=is_spec)
            elif key == "opt_state":
                shardings[key] = optax.tree_map_params(
                    tx,
                    lambda _, spec: self._named(spec),
                    value,
                    specs,
                    transform_non_params=lambda _: self._named(P()),
                    is_leaf=is_spec,
                )
            else:
                shardings[key] = jax.tree.map(lambda _: self._named(P()), value)
        return shardings

    def abstract_train_state(self, state: Mapping[str, Any], tx: optax.GradientTransformation):
        """`state` (arrays or shapes) as `jax.ShapeDtypeStruct`s carrying their shardings: the
        target of a checkpoint restore, or the input of an ahead-of-time compile."""
        shardings = self.train_state_shardings(state, tx)
        return jax.tree.map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings
        )

    def batch_sharding(self, ndim: int) -> NamedSharding:
        """Leading (batch) axis split by the `batch` rule, the rest replicated."""
        return self._named(P(self._batch_axes, *([None] * (ndim - 1))))

    # ---- placement ----------------------------------------------------------------------------

    def place_train_state(self, state, tx):
        shardings = self.train_state_shardings(state, tx)
        return jax.tree.map(lambda x, s: jax.device_put(x, s), state, shardings)

    def place_batch(self, local_batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
        """This process's rows of the global batch -> global arrays sharded over the batch axes."""
        placed = {}
        for name, rows in local_batch.items():
            rows = np.asarray(rows)
            global_rows = rows.shape[0] * jax.process_count()
            if global_rows % self.batch_parts:
                raise ValueError(
                    f"batch field {name!r}: global batch {global_rows} does not split "
                    f"{self.batch_parts} ways over the mesh's batch axes"
                )
            placed[name] = jax.make_array_from_process_local_data(
                self.batch_sharding(rows.ndim), rows
            )
        return placed

    @contextlib.contextmanager
    def activate(self):
        """Mesh and rules for the activation constraints (`lssvwm.nn.partitioning.constrain`)."""
        with jax.set_mesh(self.mesh), nnx.logical_axis_rules(self.rules):
            yield


def _as_axis(axis):
    """Config lists (ConfigDict turns tuples into lists) -> the tuples PartitionSpec expects."""
    return tuple(axis) if isinstance(axis, list) else axis
