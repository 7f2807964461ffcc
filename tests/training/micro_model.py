"""A micro world model for the state-carrying tests: every cache part (SSM, conv, KV) exists.

8x8 frames in 4x4 patches (a 2x2 token grid), width 16, one layer (a block-wise SSM with two
blocks of 1x2 tokens, its conv, frame-local attention over 2 frames): one layer keeps compiles
short. Parameters are random, not the init: AdaLN-Zero would make every block the identity and
hide whatever the carried state does.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lssvwm.models import WorldModel, WorldModelConfig
from tests.random_weights import random_split

BATCH, WINDOW = 3, 4
MICRO = dict(
    image_size=(8, 8),
    channels=3,
    patch_size=4,
    width=16,
    depth=1,
    num_heads=2,
    mlp_ratio=2.0,
    mixer="lssvwm",
    block_sizes=((1, 2),),
    attention_window=2,
    ssm_state=8,
    ssm_head_dim=8,
    ssm_chunk_size=8,
    frequency_dim=16,
    action_mode="discrete",
    num_actions=5,
)


def micro_config(**changes) -> WorldModelConfig:
    return WorldModelConfig(**{**MICRO, **changes})


@functools.cache
def micro_model(**changes):
    """(graphdef, state) of the micro model with random parameters, built without compiling."""
    return random_split(lambda: WorldModel(micro_config(**changes), rngs=nnx.Rngs(0)))


def merged(**changes) -> WorldModel:
    graphdef, state = micro_model(**changes)
    return nnx.merge(graphdef, state)


@functools.partial(jax.jit, static_argnums=(0, 1))
def run(graphdef, method, state, *args):
    """A jitted model method: run(graphdef, "prefill", state, frames, level, actions, cache)."""
    return getattr(nnx.merge(graphdef, state), method)(*args)


def window_inputs(frames=2 * WINDOW, batch=BATCH, seed=0):
    """Random (frames [b, t, 8, 8, 3] in [-1, 1], levels [b, t] in [0, 1], actions [b, t])."""
    rng = np.random.default_rng(seed)
    return (
        jnp.asarray(rng.uniform(-1, 1, (batch, frames, 8, 8, 3)), jnp.float32),
        jnp.asarray(rng.uniform(size=(batch, frames)), jnp.float32),
        jnp.asarray(rng.integers(0, 5, (batch, frames)), jnp.int32),
    )
