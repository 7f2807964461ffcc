"""Logical axis names -> a device mesh is a config change (rules), not a code change."""

import textwrap

import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from lssvwm.models import WorldModel, WorldModelConfig
from lssvwm.nn.partitioning import parameter_specs
from tests.fake_devices import run_script

TINY = dict(
    image_size=(8, 16), channels=3, patch_size=4, width=16, depth=2, num_heads=2,
    block_sizes=((1, 2), "full"), attention_window=2, max_frames=8, ssm_state=8,
    ssm_head_dim=8, ssm_chunk_size=4, frequency_dim=16, pose_scale=5.0,
)  # fmt: skip


def test_parameter_specs_map_listed_names_and_replicate_the_rest():
    model = nnx.eval_shape(lambda: WorldModel(WorldModelConfig(**TINY), rngs=nnx.Rngs(0)))
    specs = parameter_specs(nnx.state(model, nnx.Param), (("mlp", "model"), ("heads", "model")))
    mlp = specs["blocks"][0]["mlp"]
    assert mlp["fc_in"]["kernel"].get_value() == P(None, "model")
    assert mlp["fc_out"]["kernel"].get_value() == P("model", None)
    attention = specs["blocks"][0]["attention"]
    assert attention["q_kernel"].get_value() == P(None, "model", None)


@pytest.mark.slow
def test_sharded_init_and_forward_on_four_fake_devices():
    """Params placed by jit(init, out_shardings), forward under the mesh: as on one device."""
    script = textwrap.dedent(
        f"""
        import os
        flags = os.environ.get("XLA_FLAGS", "")  # the suite's (tests/conftest.py)
        os.environ["XLA_FLAGS"] = flags + " --xla_force_host_platform_device_count=4"
        import jax, jax.numpy as jnp, numpy as np
        from flax import nnx
        from jax.sharding import NamedSharding, PartitionSpec as P
        from lssvwm.models import WorldModel, WorldModelConfig
        from lssvwm.nn.partitioning import parameter_specs
        config = WorldModelConfig(**{TINY!r})
        mesh = jax.make_mesh((2, 2), ("data", "model"),
                             axis_types=(jax.sharding.AxisType.Auto,) * 2)
        rules = (("batch", "data"), ("mlp", "model"), ("heads", "model"), ("ssm_inner", "model"))
        graphdef, abstract = nnx.split(nnx.eval_shape(lambda: WorldModel(config, rngs=nnx.Rngs(0))))
        shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), parameter_specs(abstract, rules),
                                 is_leaf=lambda x: isinstance(x, P))
        init = jax.jit(lambda: nnx.split(WorldModel(config, rngs=nnx.Rngs(0)))[1],
                       out_shardings=shardings)
        state = init()
        assert state["blocks"][0]["mlp"]["fc_in"]["kernel"][...].sharding.spec == P(None, "model")
        frames, noise, poses = jnp.ones((4, 4, 8, 16, 3)), jnp.zeros((4, 4)), jnp.zeros((4, 4, 3))
        forward = jax.jit(lambda s, *a: nnx.merge(graphdef, s)(*a))
        with jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
            y = forward(state, frames, noise, poses)
        assert y.sharding.spec == P("data"), y.sharding
        reference = forward(jax.device_get(state), frames, noise, poses)
        np.testing.assert_allclose(np.asarray(y), np.asarray(reference), atol=1e-5)
        print("ok")
        """
    )
    run_script(script)
