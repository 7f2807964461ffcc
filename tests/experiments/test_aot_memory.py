"""experiments/aot_memory: the paper-scale configs hold ~200M parameters each, and a train step
compiles ahead of time for abstract inputs with a per-device memory record."""

import numpy as np
import pytest

from configs import paper_200m
from experiments.aot_memory.aot_memory import compiled_train_step_memory
from lssvwm.config_loading import load_config
from lssvwm.models import WorldModelConfig, count_parameters


@pytest.mark.parametrize("mixer", list(paper_200m.DEPTHS))
def test_paper_models_are_matched_at_200m_parameters(mixer):
    config = load_config(f"configs/paper_200m.py:mixer={mixer}")
    params = count_parameters(WorldModelConfig.from_mapping(config.model.to_dict()))
    assert 190e6 < params < 210e6, f"{mixer}: {params / 1e6:.1f}M"
    assert config.curriculum.lengths == (400, 800) and config.training.window_length == 800


@pytest.mark.slow  # ~40 s of compiling on 8 fake devices; an experiment tool, not the library
def test_tiny_train_step_compiles_ahead_of_time():
    config = load_config("configs/quickstart.py:variant=tiny")
    record, compiled = compiled_train_step_memory(config, window=8, batch=2)
    sizes = record["per_device"]
    # Arguments hold at least the parameters, EMA and two Adam moments in float32.
    assert sizes["argument_bytes"] >= 4 * 4 * record["num_params"]
    assert sizes["temp_bytes"] > 0 and sizes["peak_estimate_bytes"] >= sizes["argument_bytes"]
    assert (record["window_frames"], record["global_batch"]) == (8, 2)
    assert compiled is not None and np.isfinite(record["compile_seconds"])
