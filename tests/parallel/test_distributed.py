"""Multi-host start-up (the mesh section's distributed keys) and the process-0 gating of files."""

import jax
import pytest

from lssvwm.parallel import Parallel, default_config, distributed
from lssvwm.training.metrics import MetricWriter


def _mesh(**keys):
    section = default_config()
    section.update(keys)
    return section


def test_the_default_mesh_section_is_valid_and_starts_nothing(monkeypatch):
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **k: calls.append((a, k)))
    assert distributed.start(default_config()) is False
    assert distributed.start(None) is False
    assert calls == []


def _three(address="h:1", count=2, index=0, **keys):
    """The three launch keys (and distributed=True unless overridden)."""
    launch = dict(coordinator_address=address, num_processes=count, process_id=index)
    return {"distributed": True, **launch, **keys}


@pytest.mark.parametrize(
    "keys, match",
    [
        (_three(distributed=False), "mesh.coordinator_address is set but mesh.distributed"),
        (_three(index=None), "mesh.process_id is missing"),
        (_three(address=None), "mesh.coordinator_address is missing"),
        (_three(address="h"), "mesh.coordinator_address must be 'HOST:PORT'"),
        (_three(address=":1"), "mesh.coordinator_address must be 'HOST:PORT'"),
        (_three(address="h:x"), "mesh.coordinator_address must be 'HOST:PORT'"),
        (_three(address=1234), "mesh.coordinator_address must be 'HOST:PORT'"),
        (_three(count=0), "mesh.num_processes must be an int >= 1"),
        (_three(count="2"), "mesh.num_processes must be an int >= 1"),
        (_three(index=-1), "mesh.process_id must be an int >= 0"),
        (_three(index=2), "mesh.process_id 2 must be below mesh.num_processes 2"),
        (dict(distributed="yes"), "mesh.distributed must be True or False"),
    ],
)
def test_bad_distributed_keys_fail_before_starting_and_name_the_key(monkeypatch, keys, match):
    monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **k: pytest.fail("started"))
    section = {"axes": {"data": -1}, **keys}
    with pytest.raises(ValueError, match=match):
        distributed.start(section)
    with pytest.raises(ValueError, match=match.split()[0]):  # the mesh section names the key too
        Parallel.from_config(section)


def test_start_passes_the_three_keys_or_none(monkeypatch):
    calls = []
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **k: calls.append((a, k)))
    section = _mesh(distributed=True, coordinator_address="10.0.0.1:1234")
    section.update(num_processes=4, process_id=3)
    assert distributed.start(section) is True
    assert distributed.start(_mesh(distributed=True)) is True  # TPU pod / SLURM: JAX detects
    assert calls == [
        ((), dict(coordinator_address="10.0.0.1:1234", num_processes=4, process_id=3)),
        ((), {}),
    ]


def test_a_started_system_is_not_started_again(monkeypatch):
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **k: pytest.fail("again"))
    assert distributed.start(_mesh(distributed=True)) is True


def test_a_distributed_mesh_without_start_up_says_what_to_call():
    with pytest.raises(RuntimeError, match="distributed.start"):
        Parallel.from_config(_mesh(distributed=True))


def test_only_process_zero_writes_metrics(monkeypatch, tmp_path):
    assert distributed.is_primary()
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    assert not distributed.is_primary()
    writer = MetricWriter(tmp_path / "run", active=distributed.is_primary())
    assert writer.write(3, {"loss": 0.5}) == {"step": 3, "loss": 0.5}
    writer.close()
    assert not (tmp_path / "run").exists()


def test_one_process_decides_for_itself():
    assert distributed.primary_decides(True) is True
    assert distributed.primary_decides(False) is False
