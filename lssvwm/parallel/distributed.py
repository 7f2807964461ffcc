"""Multi-host start-up, and the one process that writes a run's files.

    distributed.start(config.mesh)   # first, before any other JAX call (jax.devices() included)
    if distributed.is_primary():     # process 0: config.json, metrics, samples, eval_final.json
        path.write_text(...)

One process runs per host (or per GPU); every process runs the same program on its share of the
devices. With `mesh.distributed=True`, `start` calls `jax.distributed.initialize()`: with
`mesh.coordinator_address` ("HOST:PORT" of process 0, reachable by all), `mesh.num_processes`
and `mesh.process_id` when given (all three, or none), otherwise with no arguments, where JAX
detects the cluster itself (TPU pods, SLURM, Open MPI). JAX refuses to start the distributed
system once a backend exists, so nothing may touch a device before `start`. Cross-process
collectives on CPU use gloo, this JAX's default (`jax_cpu_collectives_implementation`).

Every process computes everything (the state is one global array across hosts, so training,
evaluation and sampling are collective), but only the primary process writes files; orbax
checkpoints are collective writes that orbax itself coordinates (all processes call `save`).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import numpy as np

KEYS = ("coordinator_address", "num_processes", "process_id")


def _section_dict(section) -> dict:
    if section is None:
        return {}
    return dict(section.to_dict() if hasattr(section, "to_dict") else section)


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def check_section(section: Mapping | None) -> None:
    """Validates the distributed keys of a `mesh` section; errors name the key."""
    section = _section_dict(section)
    distributed = section.get("distributed", False)
    if not isinstance(distributed, bool | np.bool_):
        raise ValueError(f"mesh.distributed must be True or False, got {distributed!r}")
    given = [key for key in KEYS if section.get(key) is not None]
    if given and not distributed:
        raise ValueError(f"mesh.{given[0]} is set but mesh.distributed is False")
    address = section.get("coordinator_address")
    if address is not None:
        host, colon, port = address.rpartition(":") if isinstance(address, str) else ("",) * 3
        if not (colon and host and port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"mesh.coordinator_address must be 'HOST:PORT', got {address!r}")
    count, index = section.get("num_processes"), section.get("process_id")
    if count is not None and not (_is_int(count) and count >= 1):
        raise ValueError(f"mesh.num_processes must be an int >= 1, got {count!r}")
    if index is not None and not (_is_int(index) and index >= 0):
        raise ValueError(f"mesh.process_id must be an int >= 0, got {index!r}")
    if given and len(given) != len(KEYS):
        missing = [key for key in KEYS if key not in given]
        raise ValueError(
            f"mesh.{missing[0]} is missing: give mesh.coordinator_address, mesh.num_processes and "
            "mesh.process_id together, or none of them (JAX then detects the cluster)"
        )
    if given and index >= count:
        raise ValueError(f"mesh.process_id {index} must be below mesh.num_processes {count}")


def start(section: Mapping | None) -> bool:
    """Starts the JAX distributed system when `section.distributed` (a `mesh` config section);
    returns whether it is running. Call it before any other JAX call. The section is validated
    first, so a bad key fails at once rather than after a coordinator timeout."""
    check_section(section)
    section = _section_dict(section)
    if not section.get("distributed", False):
        return False
    if jax.distributed.is_initialized():  # started already (a launcher, a notebook)
        return True
    if section.get("coordinator_address") is None:
        jax.distributed.initialize()  # the cluster (TPU pod, SLURM, MPI) says who is who
    else:
        jax.distributed.initialize(
            coordinator_address=section["coordinator_address"],
            num_processes=int(section["num_processes"]),
            process_id=int(section["process_id"]),
        )
    return True


def is_primary() -> bool:
    """Whether this process writes the run's files (process 0; True without multi-host)."""
    return jax.process_index() == 0


def primary_decides(flag: bool) -> bool:
    """Process 0's `flag` on every process: a branch every process must take the same way (one
    that runs collectives) is decided where the files are written."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.asarray(bool(flag))))
