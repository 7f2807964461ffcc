"""Shared fixtures of the trainer tests: the tiny quickstart config and a tiny model/state."""

import numpy as np
import pytest
from flax import nnx

from lssvwm.config_loading import load_config
from lssvwm.diffusion import DiffusionConfig
from lssvwm.models import WorldModel, WorldModelConfig
from lssvwm.training.optimizer import make_optimizer
from lssvwm.training.train_state import init_train_state, split_model
from lssvwm.training.train_step import make_train_step


@pytest.fixture(scope="session")
def tiny_config():
    """configs/quickstart.py:tiny (16x16 frames, 2 layers, width 32)."""
    return load_config("configs/quickstart.py:tiny")


@pytest.fixture(scope="session")
def tiny_parts(tiny_config):
    """(graphdef, fresh train state factory, tx, schedule, diffusion config, model config)."""
    model_config = WorldModelConfig.from_mapping(tiny_config.model)
    tx, schedule = make_optimizer(tiny_config.optimizer, total_steps=10)

    def fresh_state(seed=0):
        model = WorldModel(model_config, rngs=nnx.Rngs(seed))
        return init_train_state(model, tx)

    graphdef, _, _ = split_model(WorldModel(model_config, rngs=nnx.Rngs(0)))
    diffusion = DiffusionConfig.from_mapping(tiny_config.diffusion)
    return graphdef, fresh_state, tx, schedule, diffusion, model_config


@pytest.fixture(scope="session")
def tiny_step_fn(tiny_parts):
    """The jitted train step of the tiny model (EMA decay 0.99, seed 0), compiled once."""
    graphdef, _, tx, schedule, diffusion, _ = tiny_parts
    return make_train_step(graphdef, diffusion, tx, ema_decay=0.99, seed=0, schedule=schedule)


@pytest.fixture(scope="session")
def make_batch():
    """random_batch(model_config, batch=2, frames=8, seed=0): uint8 frames, int actions."""
    return random_batch


def random_batch(model_config, batch=2, frames=8, seed=0):
    rng = np.random.default_rng(seed)
    h, w = model_config.image_size
    return {
        "frames": rng.integers(0, 256, (batch, frames, h, w, 3), dtype=np.uint8),
        "actions": rng.integers(0, model_config.num_actions, (batch, frames), dtype=np.int32),
    }
