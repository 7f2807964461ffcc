"""The mesh section and sharded training: a sharded train step equals the one-device step."""

import textwrap

import jax
import pytest

from lssvwm.parallel import Parallel, mesh_shape
from tests.fake_devices import run_script


def test_mesh_shape_fills_the_free_axis():
    assert mesh_shape({"data": -1}, 8) == {"data": 8, "fsdp": 1}
    assert mesh_shape({"data": 2, "fsdp": -1}, 8) == {"data": 2, "fsdp": 4}
    assert mesh_shape({"data": 1, "fsdp": 1}, 1) == {"data": 1, "fsdp": 1}


@pytest.mark.parametrize(
    "axes, devices, match",
    [
        ({"dp": 2}, 2, "unknown mesh axis"),
        ({"data": -1, "fsdp": -1}, 4, "at most one"),
        ({"data": 3, "fsdp": -1}, 8, "does not divide"),
        ({"data": 2, "fsdp": 2}, 8, "needs 4 devices"),
        ({"data": 0}, 1, ">= 1"),
    ],
)
def test_bad_meshes_name_the_problem(axes, devices, match):
    with pytest.raises(ValueError, match=match):
        mesh_shape(axes, devices)


def test_unknown_mesh_key_is_named():
    with pytest.raises(ValueError, match="mesh.rulez is unknown"):
        Parallel.from_config({"axes": {"data": -1}, "rulez": ()})


def test_one_device_places_a_batch_unchanged():
    import numpy as np

    parallel = Parallel.from_config(None, devices=jax.devices()[:1])
    batch = parallel.place_batch({"frames": np.ones((2, 3), np.uint8)})
    np.testing.assert_array_equal(np.asarray(batch["frames"]), np.ones((2, 3)))


SHARDED_STEP = textwrap.dedent(
    """
    import os
    flags = os.environ.get("XLA_FLAGS", "")  # the suite's (tests/conftest.py)
    os.environ["XLA_FLAGS"] = flags + " --xla_force_host_platform_device_count=8"
    import jax, numpy as np
    from flax import nnx
    from lssvwm.config_loading import load_config
    from lssvwm.diffusion import DiffusionConfig
    from lssvwm.models import WorldModel, WorldModelConfig
    from lssvwm.parallel import Parallel
    from lssvwm.training.optimizer import make_optimizer
    from lssvwm.run_spec import RunSpec
    from lssvwm.training.build import build
    from lssvwm.training.train_state import init_train_state, split_model
    from lssvwm.training.train_step import make_train_step

    config = load_config("configs/quickstart.py:tiny")
    model = WorldModel(WorldModelConfig.from_mapping(config.model), rngs=nnx.Rngs(0))
    graphdef, _, _ = split_model(model)
    tx, schedule = make_optimizer(config.optimizer, 10)
    state = jax.device_get(init_train_state(model, tx))
    step = make_train_step(graphdef, DiffusionConfig.from_mapping(config.diffusion), tx,
                           ema_decay=0.9, seed=0, schedule=schedule)
    rng = np.random.default_rng(0)
    batches = [{"frames": rng.integers(0, 256, (8, 8, 16, 16, 3), dtype=np.uint8),
                "actions": rng.integers(0, 5, (8, 8), dtype=np.int32)} for _ in range(2)]

    def run(state, built=None):
        if built is not None:  # the trainer's path: explicit shardings from build()
            state = jax.device_put(state, built.state_shardings)
            sharded_step = built.make_train_step()
        for batch in batches:
            if built is None:
                state, _, metrics = step(state, None, batch)
            else:
                with built.parallel.activate():
                    batch = built.parallel.place_batch(batch)
                    state, _, metrics = sharded_step(state, None, batch)
        return state, metrics

    reference, ref_metrics = run(jax.tree.map(np.copy, state))
    sections = config.to_dict()
    sections["mesh"]["axes"] = {"data": 2, "fsdp": -1}
    sections["training"].update(steps=10, batch_size=8)  # the reference's schedule and batch
    sections["optimizer"]["ema_decay"] = 0.9
    built = build(RunSpec.from_config(sections, check_data=False))
    sharded, metrics = run(jax.tree.map(np.copy, state), built)
    kernel = sharded["params"]["blocks"][0]["mlp"]["fc_in"]["kernel"][...]
    assert tuple(kernel.sharding.spec)[:1] == ("fsdp",), kernel.sharding  # [embed, mlp]
    assert any("fsdp" in str(x.sharding.spec) for x in jax.tree.leaves(sharded["opt_state"]))
    np.testing.assert_allclose(float(metrics["loss"]), float(ref_metrics["loss"]), rtol=1e-5)
    for name in ("params", "ema"):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b),
                                                             rtol=1e-4, atol=1e-6),
                     sharded[name], reference[name])
    try:
        Parallel.from_config({"axes": {"fsdp": -1}, "rules": [["heads", "fsdp"],
                              ["batch", "fsdp"]]}).place_train_state(
            jax.tree.map(np.copy, state), tx)
    except ValueError as error:
        assert "cannot be split 8 ways" in str(error), error
    else:
        raise AssertionError("an indivisible parameter axis was accepted")
    print("ok")
    """
)


def test_sharded_train_steps_equal_one_device_on_eight_fake_devices():
    """2 data x 4 FSDP (parameters, EMA and Adam moments split over fsdp): two steps give the
    same loss and weights as one device; an axis that cannot be split is a clear error."""
    run_script(SHARDED_STEP)
