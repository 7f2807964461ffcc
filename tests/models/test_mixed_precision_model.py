"""The whole world model under the mixed-precision policy (`model.dtype="bfloat16"`, float32
parameters) and the `model.attention_impl` key.

Tolerances in units of bfloat16's precision u = 2**-8, relative to the largest output:
- bfloat16 forward vs float32 forward, same weights: max |error| <= 8u * max |y| (measured
  3.0u = 1.2% with 2 layers of random weights, where AdaLN-Zero's zero init cannot hide them);
- bfloat16 streaming (prefill + one step per frame) vs the bfloat16 parallel pass, and carried
  windows (prefill, then prefill from its cache) vs one pass: max |error| <= 2u * max |y|
  (measured 0: the same computations in another order of blocks).
The sampler's jitted generation runs under the policy with the cache's dtypes unchanged.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lssvwm.diffusion import DiffusionConfig, Sampler
from lssvwm.models import WorldModel, WorldModelConfig
from tests.training.micro_model import micro_config, micro_model, run, window_inputs

U = 2.0**-8  # bfloat16's unit roundoff
# The micro model with two layers: a block-wise scan (2 blocks of 1x2 tokens) and a full-frame
# one, each with frame-local attention over 2 frames; the prefix is fed whole, then frame by frame.
TWO_LAYERS = dict(depth=2, block_sizes=((1, 2), "full"))
PREFILL = 3


def _graphs():
    """(float32 graph, bfloat16 graph, the float32 model's random weights): the policy changes no
    parameter, so both graphs take the same weights."""
    graph32, weights = micro_model(**TWO_LAYERS)
    graph16, weights16 = micro_model(**TWO_LAYERS, dtype="bfloat16")
    assert jax.tree.map(lambda a: (a.shape, a.dtype), weights) == jax.tree.map(
        lambda a: (a.shape, a.dtype), weights16
    )
    return graph32, graph16, weights


def _max_error(got, want) -> tuple[float, float]:
    got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    return float(np.abs(got - want).max()), float(np.abs(want).max())


def test_parameters_stay_float32_and_caches_follow_the_policy():
    config = micro_config(**TWO_LAYERS, dtype="bfloat16")
    model = nnx.eval_shape(lambda: WorldModel(config, rngs=nnx.Rngs(0)))
    params = nnx.state(model, nnx.Param)
    assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
    cache = jax.eval_shape(lambda: model.init_cache(2))
    for layer in cache.layers:
        assert layer.ssm.ssm.dtype == jnp.float32  # the SSM state: float32 always
        assert layer.ssm.conv.dtype == jnp.bfloat16  # the conv's last inputs: compute dtype
        assert layer.kv.keys.dtype == layer.kv.values.dtype == jnp.bfloat16  # KV cache: same


def test_bfloat16_forward_stays_within_8u_of_float32():
    graph32, graph16, weights = _graphs()
    frames, levels, actions = window_inputs()
    y32 = run(graph32, "__call__", weights, frames, levels, actions)
    y16 = run(graph16, "__call__", weights, frames, levels, actions)
    assert y16.dtype == jnp.float32  # the output head computes in float32
    error, scale = _max_error(y16, y32)
    assert scale > 0.5, scale  # random weights: a model that outputs something
    assert 0 < error <= 8 * U * scale, (error, scale)  # > 0: bfloat16 really ran


def test_bfloat16_streaming_equals_the_bfloat16_parallel_pass():
    _, graph16, weights = _graphs()
    frames, levels, actions = window_inputs()
    y_parallel = run(graph16, "__call__", weights, frames, levels, actions)
    prefix = lambda a: a[:, :PREFILL]
    y_prefill, cache = run(graph16, "prefill", weights, *map(prefix, (frames, levels, actions)))
    outputs = [y_prefill]
    for t in range(PREFILL, frames.shape[1]):
        unit = lambda a, t=t: a[:, t : t + 1]
        y, cache = run(graph16, "step", weights, *map(unit, (frames, levels, actions)), cache)
        outputs.append(y)
    for layer in cache.layers:
        assert layer.ssm.ssm.dtype == jnp.float32 and layer.kv.keys.dtype == jnp.bfloat16
    error, scale = _max_error(jnp.concatenate(outputs, axis=1), y_parallel)
    assert error <= 2 * U * scale, (error, scale)

    # Carried windows (state carrying in training): the second half from the first's cache.
    y_first, carried = run(graph16, "prefill", weights, *map(prefix, (frames, levels, actions)))
    rest = lambda a: a[:, PREFILL:]
    y_rest, _ = run(graph16, "prefill", weights, *map(rest, (frames, levels, actions)), carried)
    error, scale = _max_error(jnp.concatenate([y_first, y_rest], axis=1), y_parallel)
    assert error <= 2 * U * scale, (error, scale)


def test_bfloat16_sampler_generates_with_the_policy_s_cache():
    """The jitted generation path (denoising steps in a fori_loop, the cache a donated pytree)
    keeps the cache's dtypes from unit to unit: SSM state float32, keys/values bfloat16."""
    _, graph16, weights = _graphs()
    config = DiffusionConfig.from_mapping({"target": "x0", "sampler_steps": 2})
    sampler = Sampler(nnx.merge(graph16, weights), config, donate_cache=True)
    frames, _, actions = window_inputs()
    cache = sampler.prefill(frames[:, :PREFILL], actions[:, :PREFILL], jax.random.key(0))
    dtypes = jax.tree.map(lambda a: a.dtype, cache)
    generated, cache = sampler.generate(cache, actions[:, PREFILL:], jax.random.key(1))
    assert generated.dtype == jnp.float32 and bool(jnp.isfinite(generated).all())
    assert jax.tree.map(lambda a: a.dtype, cache) == dtypes
    assert cache.layers[0].ssm.ssm.dtype == jnp.float32
    assert cache.layers[0].kv.keys.dtype == jnp.bfloat16


def test_config_errors_name_the_key():
    def parse(**changes):
        return WorldModelConfig.from_mapping({**micro_config().to_dict(), **changes})

    with pytest.raises(ValueError, match=r"^model.attention_impl must be one of \('auto', "):
        parse(attention_impl="flash")
    with pytest.raises(ValueError, match=r"^model.attention_impl 'cudnn' needs a bfloat16"):
        parse(attention_impl="cudnn")  # float32 compute
    with pytest.raises(ValueError, match=r"^model.attention_impl 'cudnn' needs a head dim"):
        parse(attention_impl="cudnn", dtype="bfloat16", width=24, num_heads=2)  # head dim 12
    with pytest.raises(ValueError, match=r"^model.dtype must be one of \('float32', 'bfloat16'"):
        parse(dtype="bf16")
    with pytest.raises(ValueError, match=r"^model.param_dtype must be one of"):
        parse(param_dtype="fp32")
    assert parse().attention_impl == "auto"
    # A mixer without attention ignores the key, as it ignores the attention window.
    assert parse(mixer="mamba2", attention_impl="cudnn").attention_implementation() == "xla"


def test_cudnn_off_a_gpu_is_refused_when_the_model_is_built():
    """Parsing is the same on any machine (a config for a GPU run can be checked on a laptop);
    building the model is where the backend counts: an explicit "cudnn" is never replaced."""
    config = micro_config(dtype="bfloat16", attention_impl="cudnn")  # head dim 8, 4 tokens
    assert config.attention_implementation(platform="cuda") == "cudnn"
    assert micro_config(dtype="bfloat16").attention_implementation(platform="cuda") == "cudnn"
    assert micro_config().attention_implementation(platform="cuda") == "xla"  # float32
    if jax.default_backend() != "gpu":
        with pytest.raises(ValueError, match="^model.attention_impl 'cudnn' needs an NVIDIA GPU"):
            nnx.eval_shape(lambda: WorldModel(config, rngs=nnx.Rngs(0)))
        assert micro_config(dtype="bfloat16").attention_implementation() == "xla"
