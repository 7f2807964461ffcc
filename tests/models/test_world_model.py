"""World model: streaming (prefill + step/commit) equals the parallel pass for every mixer;
per-frame conditioning; cache sizes; config validation; parameter counts."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lssvwm.models import (
    WorldModel,
    WorldModelConfig,
    count_parameters,
    depth_for_parameter_budget,
    parameter_report,
)
from tests.random_weights import random_split

BATCH, FRAMES, PREFILL = 2, 6, 2
TINY = dict(
    image_size=(8, 16),  # non-square: a transposed grid would not go unnoticed
    channels=3,
    patch_size=4,  # token grid 2 x 4
    width=16,
    depth=2,
    num_heads=2,
    mlp_ratio=2.0,
    block_sizes=((1, 2), "full"),
    attention_window=2,
    max_frames=8,
    ssm_state=8,
    ssm_head_dim=8,
    ssm_chunk_size=4,
    frequency_dim=16,
    pose_scale=5.0,
    num_actions=5,
)
# name: config changes. Each mixer once; the action modes, the chunked window and the pose
# rotation of attention (and of the SSM's B and C: lssvwm, mamba2) ride along.
# Baselines use one layer (each layer is a compile's worth of graph); lssvwm two block sizes.
VARIANTS = {
    "lssvwm": dict(
        mixer="lssvwm", action_mode="pose_and_motion", pose_rope_frequencies=1, pose_rope_ssm=True
    ),
    "lssvwm_chunked": dict(
        mixer="lssvwm",
        attention_window=4,
        attention_chunk=2,
        action_mode="relative_pose",
        depth=1,
    ),
    "mamba2_fla": dict(mixer="mamba2_fla", action_mode="discrete", depth=1),
    "mamba2": dict(
        mixer="mamba2", action_mode="pose", depth=1, pose_rope_frequencies=1, pose_rope_ssm=True
    ),
    "causal_window": dict(
        mixer="causal_window",
        attention_window=3,
        action_mode="pose",
        depth=1,
        pose_rope_frequencies=1,
    ),
    "causal_full": dict(mixer="causal_full", action_mode="discrete", depth=1),
}


def config_for(name):
    return WorldModelConfig(**{**TINY, **VARIANTS[name]})


@functools.cache
def model_for(name):
    """The variant's graph and random parameters (not the init: AdaLN-Zero would output zeros).

    Built abstractly and filled from numpy, so no initialiser has to compile.
    """
    return random_split(lambda: WorldModel(config_for(name), rngs=nnx.Rngs(0)))


@functools.partial(jax.jit, static_argnums=(0, 1))
def run(graphdef, method, state, *args):
    return getattr(nnx.merge(graphdef, state), method)(*args)


def inputs_for(config, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.standard_normal((BATCH, FRAMES, *config.image_size, config.channels))
    noise = rng.uniform(size=(BATCH, FRAMES))
    if config.action_mode == "discrete":
        actions = rng.integers(0, config.num_actions, size=(BATCH, FRAMES), dtype=np.int32)
    else:
        actions = np.concatenate(
            [rng.uniform(0, 5, (BATCH, FRAMES, 2)), rng.uniform(-4, 4, (BATCH, FRAMES, 1))], -1
        )
    return (
        jnp.asarray(frames, jnp.float32),
        jnp.asarray(noise, jnp.float32),
        jnp.asarray(actions, jnp.int32 if config.action_mode == "discrete" else jnp.float32),
    )


def stream(name, frames, noise, actions):
    """prefill(PREFILL frames) then step + commit one unit at a time; outputs and cache sizes."""
    graphdef, state = model_for(name)
    model = nnx.merge(graphdef, state)
    prefix = lambda a: a[:, :PREFILL]
    y_prefill, cache = run(graphdef, "prefill", state, *map(prefix, (frames, noise, actions)))
    sizes = [cache.nbytes]
    cache = model.reserve(cache, FRAMES - PREFILL)  # growing caches: room before jitted steps
    outputs = [y_prefill]
    for start in range(PREFILL, FRAMES, model.unit):
        unit = lambda a, s=start: a[:, s : s + model.unit]
        y, candidate = run(graphdef, "step", state, *map(unit, (frames, noise, actions)), cache)
        outputs.append(y)
        cache = candidate  # a sampler keeps the candidate of the final (here: only) pass
        sizes.append(cache.nbytes)
    return jnp.concatenate(outputs, axis=1), cache, sizes


@pytest.mark.parametrize("name", list(VARIANTS))
def test_prefill_and_stepping_equal_parallel_pass(name):
    config = config_for(name)
    frames, noise, actions = inputs_for(config)
    graphdef, state = model_for(name)
    y_parallel = run(graphdef, "__call__", state, frames, noise, actions)
    assert y_parallel.shape == (BATCH, FRAMES, *config.image_size, config.channels)
    assert np.abs(y_parallel).max() > 0.1
    y_stream, _, sizes = stream(name, frames, noise, actions)
    np.testing.assert_allclose(y_stream, y_parallel, rtol=2e-4, atol=2e-4)
    if name == "causal_full":
        assert sizes[-1] > sizes[0], sizes  # the full-context cache grows with the frames
    else:
        assert len(set(sizes)) == 1, sizes  # fixed-size state, however many frames


@pytest.mark.parametrize("name", ["lssvwm", "causal_full"])
def test_denoising_steps_do_not_leak_and_commit_keeps_the_clean_pass(name):
    """Denoising passes read the cache only; the committed clean pass decides what is kept."""
    config = config_for(name)
    frames, noise, actions = inputs_for(config)
    graphdef, state = model_for(name)
    model = nnx.merge(graphdef, state)
    prefix = lambda a: a[:, :PREFILL]
    _, cache = run(graphdef, "prefill", state, *map(prefix, (frames, noise, actions)))
    cache = model.reserve(cache, FRAMES - PREFILL)
    unit = lambda a: a[:, PREFILL : PREFILL + 1]
    for shift in (2.0, 1.0):  # two "denoising" passes on a noisier frame; candidates discarded
        run(graphdef, "step", state, unit(frames) + shift, unit(noise) + 0.1, unit(actions), cache)
    committed = run(graphdef, "commit", state, unit(frames), unit(actions), cache)
    # The next frame sees the committed frame: as in a parallel pass with that frame clean.
    next_unit = lambda a: a[:, PREFILL + 1 : PREFILL + 2]
    y_next, _ = run(graphdef, "step", state, *map(next_unit, (frames, noise, actions)), committed)
    noise_clean = noise.at[:, PREFILL].set(0.0)
    y_parallel = run(graphdef, "__call__", state, frames, noise_clean, actions)
    np.testing.assert_allclose(y_next, y_parallel[:, PREFILL + 1 : PREFILL + 2], atol=2e-4)


@pytest.mark.parametrize("what", ["noise", "action"])
def test_conditioning_is_per_frame(what):
    """Changing frame t's noise level or action changes no earlier frame's output."""
    name = "lssvwm" if what == "noise" else "mamba2_fla"  # a pose and a discrete model
    config = config_for(name)
    frames, noise, actions = inputs_for(config)
    graphdef, state = model_for(name)
    t = 3
    if what == "noise":
        noise2 = noise.at[:, t].add(0.5)
        actions2 = actions
    else:
        noise2 = noise
        actions2 = actions.at[:, t].set((actions[:, t] + 1) % config.num_actions)
    y = run(graphdef, "__call__", state, frames, noise, actions)
    y2 = run(graphdef, "__call__", state, frames, noise2, actions2)
    np.testing.assert_array_equal(y[:, :t], y2[:, :t])
    assert np.abs(y[:, t] - y2[:, t]).max() > 1e-3


def test_reset_cache_forgets_one_stream():
    name = "lssvwm"
    config = config_for(name)
    frames, noise, actions = inputs_for(config)
    graphdef, state = model_for(name)
    model = nnx.merge(graphdef, state)
    prefix = lambda a: a[:, :PREFILL]
    _, cache = run(graphdef, "prefill", state, *map(prefix, (frames, noise, actions)))
    reset = model.reset_cache(cache, jnp.array([True, False]))
    fresh = model.init_cache(BATCH)
    for got, _, full in zip(
        jax.tree.leaves(reset), jax.tree.leaves(fresh), jax.tree.leaves(cache), strict=True
    ):
        if got.ndim and got.shape[0] % BATCH == 0 and got.shape[0] >= BATCH:
            half = got.shape[0] // BATCH
            np.testing.assert_array_equal(got[half:], full[half:])  # stream 1 untouched
    for lc in reset.layers:
        np.testing.assert_array_equal(lc.ssm.ssm[: lc.ssm.ssm.shape[0] // 2], 0)
        assert int(lc.kv.filled[0]) == 0 and int(lc.kv.filled[1]) > 0
    assert reset.nbytes == fresh.nbytes == cache.nbytes


def test_parameter_report_and_budget_matching():
    config = config_for("lssvwm")
    report = parameter_report(config)
    assert report["total"] == sum(report[k] for k in ("embed", "conditioning", "final", "blocks"))
    assert report["blocks"] == sum(
        report[f"blocks.{k}"] for k in ("ssm", "attention", "mlp", "modulation")
    )
    budget = count_parameters(config.replace(depth=6))
    assert depth_for_parameter_budget(config, budget) == 6
    causal = config_for("causal_full")
    depth = depth_for_parameter_budget(causal, budget)
    per_layer = parameter_report(causal)["per_block"]
    assert depth > 6  # attention-only layers are smaller, so more of them
    assert abs(count_parameters(causal.replace(depth=depth)) - budget) <= per_layer / 2


def test_every_parameter_has_logical_axis_names():
    graphdef, state = model_for("lssvwm")
    model = nnx.merge(graphdef, state)
    params = nnx.state(model, nnx.Param)
    for path, variable in jax.tree_util.tree_leaves_with_path(
        params, is_leaf=lambda x: isinstance(x, nnx.Variable)
    ):
        names = variable.get_metadata().get("out_sharding")
        assert names is not None and len(names) == variable.shape.__len__(), path
    specs = nnx.get_partition_spec(params)
    assert tuple(specs["blocks"][0]["mlp"]["fc_in"]["kernel"].get_value()) == ("embed", "mlp")


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="does not divide the token grid"):
        WorldModelConfig(**{**TINY, "block_sizes": ((1, 3),)})
    with pytest.raises(ValueError, match="longer than the training window"):
        WorldModelConfig(**{**TINY, "attention_window": 9})
    with pytest.raises(ValueError, match="model.[a-z_]* is unknown"):
        WorldModelConfig.from_mapping({**TINY, "widht": 3})
    with pytest.raises(ValueError, match="mixer must be one of"):
        WorldModelConfig(**{**TINY, "mixer": "transformer"})
    with pytest.raises(ValueError, match="patch_size"):
        WorldModelConfig(**{**TINY, "patch_size": 3})
    config = WorldModelConfig.from_mapping({**TINY, "block_sizes": [[1, 2], "full"]})
    assert config.block_sizes == ((1, 2), "full") and hash(config)
    posed = {**TINY, "action_mode": "pose", "pose_rope_ssm": True}
    with pytest.raises(ValueError, match="pose_rope_ssm needs pose_rope_frequencies"):
        WorldModelConfig(**posed)
    with pytest.raises(ValueError, match="pose_rope_ssm needs .* an SSM"):
        WorldModelConfig(**{**posed, "pose_rope_frequencies": 1, "mixer": "causal_full"})
    with pytest.raises(ValueError, match="ssm_state=8 has 4"):  # 2 frequencies: 6 pairs
        WorldModelConfig(**{**posed, "pose_rope_frequencies": 2, "mixer": "mamba2"})


def test_bad_inputs_are_clear():
    graphdef, state = model_for("lssvwm")
    model = nnx.merge(graphdef, state)
    frames, noise, actions = inputs_for(config_for("lssvwm"))
    with pytest.raises(ValueError, match="noise level must be per frame"):
        model(frames, noise[:, :2], actions)
    with pytest.raises(ValueError, match=r"poses \(x, y, heading\)"):
        model(frames, noise, actions[..., :2])
    with pytest.raises(ValueError, match="frames must be"):
        model(frames[..., :2], noise, actions)
    with pytest.raises(ValueError, match="step takes one unit"):
        model.step(frames[:, :2], noise[:, :2], actions[:, :2], model.init_cache(BATCH))


def test_remat_gives_the_same_loss_and_gradients():
    """`remat` only trades memory for compute: same prediction, same parameter gradients."""
    graphdef, state = model_for("causal_window")
    remat_graphdef, _ = nnx.split(
        nnx.eval_shape(
            lambda: WorldModel(config_for("causal_window").replace(remat=True), rngs=nnx.Rngs(0))
        )
    )
    frames, noise, actions = inputs_for(config_for("causal_window"))

    def loss_and_grad(graph):
        def loss(params):
            return jnp.mean(nnx.merge(graph, params)(frames, noise, actions) ** 2)

        return jax.jit(jax.value_and_grad(loss))(state)

    (loss, grads), (remat_loss, remat_grads) = (
        loss_and_grad(graphdef),
        loss_and_grad(remat_graphdef),
    )
    np.testing.assert_allclose(remat_loss, loss, rtol=1e-6)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), remat_grads, grads
    )
