"""experiments/memory/ssm_decay.py: the SSM decay spectrum of a trained run."""

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_frames, random_model

from experiments.memory import ssm_decay
from lssvwm.models import WorldModelConfig
from lssvwm.nn.mamba2 import Mamba2Mixer


def test_spectrum_of_a_run_has_every_layer_and_head(tiny_run):
    workdir, config = tiny_run
    record = ssm_decay.spectrum(str(workdir), windows=2, length=8)
    model_config = WorldModelConfig.from_mapping(config.model)
    assert [layer["layer"] for layer in record["layers"]] == list(range(model_config.depth))
    heads = sum(len(layer["half_life_frames"]) for layer in record["layers"])
    assert heads == record["heads"] > 0
    assert all(h > 0 for layer in record["layers"] for h in layer["half_life_frames"])
    # block sizes ("full", (1, 1)) on the tiny 2x2 token grid: 4 tokens, then 1, per frame
    assert [layer["tokens_per_frame_in_sequence"] for layer in record["layers"]] == [4, 1]


def test_ten_times_the_decay_rate_is_a_tenth_of_the_half_life(tiny_run):
    _, config = tiny_run
    model_config = WorldModelConfig.from_mapping(config.model)
    model = random_model(model_config, seed=3)
    frames = jnp.asarray(random_frames((2, 8, 16, 16, 3)))
    actions = jnp.zeros((2, 8), jnp.int32)
    before = ssm_decay.record_decays(model, frames, actions)
    assert Mamba2Mixer._ssm_inputs.__name__ == "_ssm_inputs"  # the original is back
    for _, mixer in model.iter_modules():
        if isinstance(mixer, Mamba2Mixer):
            mixer.A_log[...] = mixer.A_log[...] + np.log(10.0)  # A -> 10 A, dt unchanged
    after = ssm_decay.record_decays(model, frames, actions)
    # the first layer's dt sees the same input (later layers' inputs change with A)
    a, b = before[0], after[0]
    np.testing.assert_allclose(b, 10 * a, rtol=1e-4)
    half_a = ssm_decay.layer_spectrum(a, 4)["half_life_frames"]
    half_b = ssm_decay.layer_spectrum(b, 4)["half_life_frames"]
    np.testing.assert_allclose(half_b, np.asarray(half_a) / 10, rtol=1e-4)
    with pytest.raises(ValueError):
        ssm_decay.layer_spectrum(np.zeros((1, 6, 2)), 4)  # 6 steps are not whole frames of 4
