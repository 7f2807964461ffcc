"""Logical axis names on parameters and activations, so that a device mesh is a config change.

Parameters carry logical names (`embed`, `mlp`, `heads`, `ssm_state`, ...) as `out_sharding`
metadata; `nnx.get_partition_spec(nnx.state(model))` under `nnx.logical_axis_rules(rules)` maps
them to mesh axes. Variables are created without eager sharding, so a model builds with no mesh
(CPU tests, `jax.eval_shape`) and is placed later by `jax.jit(init, out_shardings=...)`.

Activations are annotated with `constrain(x, names)`: a sharding constraint through the active
logical rules when a mesh is set (`jax.set_mesh`), and the identity otherwise.

Logical axis names used by `lssvwm.nn` and `lssvwm.models`:
  batch, time, height, width, tokens     activation axes
  embed                                  model width d
  mlp                                    MLP hidden width
  heads, head_dim                        attention / SSM heads and their width
  ssm_inner                              Mamba-2 inner width (expand * d) and its projections
  ssm_state                              SSM state size n
  conv_kernel                            depthwise conv taps
  patch                                  flattened patch pixels (patch * patch * channels)
  cond                                   conditioning width
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx
from flax.core import spmd as core_spmd
from jax.sharding import PartitionSpec

LogicalNames = Sequence[str | None]


def logical(initializer, names: LogicalNames):
    """Wraps a parameter initializer so the parameter carries logical axis `names`."""
    return nnx.with_partitioning(initializer, tuple(names), eager_sharding=False)


def param(rngs: nnx.Rngs, initializer, shape, names: LogicalNames, dtype) -> nnx.Param:
    """A parameter of `shape` drawn from `initializer`, annotated with logical `names`."""
    if len(names) != len(shape):
        raise ValueError(f"logical names {tuple(names)} do not match parameter shape {shape}")
    return nnx.Param(logical(initializer, names)(rngs.params(), shape, dtype))


def first_use_only(spec: PartitionSpec) -> PartitionSpec:
    """A mesh axis named by two dimensions (e.g. an [embed, embed] matrix under embed -> fsdp)
    shards the first of them only; the later ones are replicated (as flax's logical rules do)."""
    used, entries = set(), []
    for axis in spec:
        names = () if axis is None else (axis if isinstance(axis, tuple) else (axis,))
        kept = tuple(n for n in names if n not in used)
        used.update(kept)
        entries.append(None if not kept else kept[0] if len(kept) == 1 else kept)
    return PartitionSpec(*entries)


def constrain(x: jax.Array, names: LogicalNames) -> jax.Array:
    """Sharding constraint by logical `names`; the identity when no mesh is active."""
    if len(names) != x.ndim:
        raise ValueError(f"logical names {tuple(names)} do not match activation shape {x.shape}")
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return x
    # Names without a rule stay replicated rather than naming a mesh axis that may not exist.
    rules = dict(core_spmd.get_logical_axis_rules())
    spec = first_use_only(PartitionSpec(*(rules.get(name) if name else None for name in names)))
    return jax.lax.with_sharding_constraint(x, spec)


def parameter_specs(state, rules) -> object:
    """PartitionSpecs of a parameter state under logical `rules` ((name, mesh axis) pairs).

    Logical names that no rule mentions are replicated (None), so a rule table only lists what
    it shards; `nnx.get_partition_spec` alone would pass such names through as mesh axes.
    """
    names = set()
    for leaf in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, nnx.Variable)):
        if isinstance(leaf, nnx.Variable):
            names.update(n for n in (leaf.get_metadata().get("out_sharding") or ()) if n)
    listed = {name for name, _ in rules}
    complete = tuple(rules) + tuple((name, None) for name in sorted(names - listed))
    with nnx.logical_axis_rules(complete):
        specs = nnx.get_partition_spec(state)
    return jax.tree.map(first_use_only, specs, is_leaf=lambda x: isinstance(x, PartitionSpec))
