"""One build path: from a `RunSpec` to what a run needs -- model graph, optimizer, mesh, the
sharded train state and its train step.

    run = build(spec)                      # shapes only: nothing is allocated yet
    state = run.init_state()               # jit(init, out_shardings=...): born sharded
    carry = run.init_carry(batch_size)     # None without a state policy
    train_step = run.make_train_step()     # (state, carry, batch) -> (state, carry, metrics)
    target = run.checkpoint_target(batch_size)   # what a checkpoint restores into

The trainer (lssvwm/train.py) and the ahead-of-time memory tool (experiments/aot_memory) build
their runs here; evaluation loads weights into the same graph (`lssvwm.models.abstract_model`,
which this build splits too). Nothing is initialised eagerly on one device and then moved: the
initial state comes from a jitted function whose outputs carry the mesh's shardings, so a
model that only fits sharded can start.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from lssvwm.models import WorldModel, abstract_model
from lssvwm.parallel import Parallel
from lssvwm.run_spec import RunSpec
from lssvwm.training.optimizer import make_optimizer
from lssvwm.training.state_carrying import init_carry
from lssvwm.training.train_state import TrainState, init_train_state, split_model
from lssvwm.training.train_step import STREAM_FIELDS, make_train_step


@dataclasses.dataclass(frozen=True)
class BuiltRun:
    """A run's static parts (see the module docstring); arrays are made by its methods."""

    spec: RunSpec
    graphdef: Any
    tx: optax.GradientTransformation
    schedule: optax.Schedule
    parallel: Parallel
    abstract_state: Any  # jax.ShapeDtypeStructs carrying their shardings
    state_shardings: Any

    # ---- the train state ----------------------------------------------------------------------

    def _init(self) -> TrainState:
        model = WorldModel(self.spec.model, rngs=nnx.Rngs(self.spec.seed))
        return init_train_state(model, self.tx)

    def init_state(self) -> TrainState:
        """Step 0, computed under jit straight into the state's shardings."""
        return jax.jit(self._init, out_shardings=self.state_shardings)()

    # ---- the carry (state policies) -----------------------------------------------------------

    @property
    def stateful(self) -> bool:
        return self.spec.state.stateful

    def _replicated(self, tree):
        return jax.tree.map(lambda _: NamedSharding(self.parallel.mesh, P()), tree)

    def _fresh_carry(self, batch_size: int):
        # From the config's shapes: the empty cache needs no weights.
        return init_carry(abstract_model(self.spec.model), batch_size)

    def abstract_carry(self, batch_size: int):
        """The carry's shapes (None without a state policy)."""
        if not self.stateful:
            return None
        return jax.eval_shape(lambda: self._fresh_carry(batch_size))

    def init_carry(self, batch_size: int):
        """A fresh carry of `batch_size` slots, replicated (None without a state policy)."""
        abstract = self.abstract_carry(batch_size)
        if abstract is None:
            return None
        fresh = lambda: self._fresh_carry(batch_size)  # noqa: E731
        return jax.jit(fresh, out_shardings=self._replicated(abstract))()

    def checkpoint_target(self, carry_batch_size: int):
        """What a checkpoint restores into: the abstract state, with the carry's shapes for
        `carry_batch_size` slots under a state policy (a checkpoint holds both)."""
        target = dict(self.abstract_state)
        carry = self.abstract_carry(carry_batch_size)
        if carry is not None:
            shardings = self._replicated(carry)
            target["carry"] = jax.tree.map(
                lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), carry, shardings
            )
        return target

    # ---- the step and its inputs --------------------------------------------------------------

    def batch_sharding(self) -> NamedSharding:
        """Every batch field: leading axis split over the mesh's batch axes, the rest replicated."""
        return self.parallel.batch_sharding(1)

    def make_train_step(self):
        """The jitted train step with explicit shardings (lssvwm/training/train_step.py)."""
        spec = self.spec
        carry_shardings = None
        if self.stateful:
            carry_shardings = self._replicated(self.abstract_carry(spec.training.batch_size))
        return make_train_step(
            self.graphdef,
            spec.diffusion,
            self.tx,
            spec.state,
            ema_decay=spec.optimizer.ema_decay,
            seed=spec.seed,
            schedule=self.schedule,
            shardings=(self.state_shardings, carry_shardings, self.batch_sharding()),
        )

    def abstract_batch(self, batch_size: int, window: int) -> dict[str, jax.ShapeDtypeStruct]:
        """The shapes of a train batch (an ahead-of-time compile's input)."""
        model = self.spec.model
        h, w = model.image_size
        if model.action_mode == "discrete":
            actions = ((batch_size, window), np.int32)
        else:
            actions = ((batch_size, window, 3), np.float32)
        fields = {"frames": ((batch_size, window, h, w, model.channels), np.uint8)}
        fields["actions"] = actions
        if self.stateful:
            fields.update({name: ((batch_size,), np.int32) for name in STREAM_FIELDS})
            fields["episode_start"] = ((batch_size,), np.bool_)
        sharding = self.batch_sharding()
        return {
            name: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)
            for name, (shape, dtype) in fields.items()
        }


def build(spec: RunSpec, *, devices=None) -> BuiltRun:
    """The run of `spec` on `devices` (default: every device of every process)."""
    parallel = Parallel.from_config(spec.mesh, devices)
    for stage in spec.curriculum.stages:
        if stage.batch_size % parallel.batch_parts:
            raise ValueError(
                f"training.batch_size: {stage.batch_size} windows (curriculum stage "
                f"{stage.index}) do not split {parallel.batch_parts} ways over the mesh's batch "
                f"axes {dict(parallel.mesh.shape)}"
            )
        if stage.batch_size % jax.process_count():
            raise ValueError(
                f"training.batch_size: {stage.batch_size} windows do not split over "
                f"{jax.process_count()} processes"
            )
    tx, schedule = make_optimizer(spec.optimizer, spec.training.steps)
    graphdef, _, _ = split_model(abstract_model(spec.model))
    shapes = jax.eval_shape(
        lambda: init_train_state(WorldModel(spec.model, rngs=nnx.Rngs(spec.seed)), tx)
    )
    abstract_state = parallel.abstract_train_state(shapes, tx)
    return BuiltRun(
        spec=spec,
        graphdef=graphdef,
        tx=tx,
        schedule=schedule,
        parallel=parallel,
        abstract_state=abstract_state,
        state_shardings=jax.tree.map(lambda x: x.sharding, abstract_state),
    )
