"""A tiny world model for the diffusion tests: configs/network_cpu.py shrunk to 8x8 frames.

Parameters are random (not the init: AdaLN-Zero would make every output and residual zero) and
filled from numpy on an abstract graph, so no initialiser has to compile.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from configs.network_cpu import get_config
from lssvwm.models import WorldModel, WorldModelConfig

SHRINK = dict(
    image_size=(8, 8),
    patch_size=4,  # 2 x 2 tokens per frame
    width=32,
    depth=1,
    num_heads=2,
    mlp_ratio=2.0,
    block_sizes=((1, 2),),
    attention_window=2,
    max_frames=8,
    ssm_state=8,
    ssm_head_dim=16,
    ssm_chunk_size=4,
    frequency_dim=16,
)


def tiny_config(chunked: bool = False, mixer: str = "lssvwm") -> WorldModelConfig:
    """The tiny model; `chunked`: the paper's chunked window (unit 2 frames)."""
    config = WorldModelConfig.from_mapping(get_config(f"mixer={mixer}").model).replace(**SHRINK)
    return config.replace(attention_chunk=2) if chunked else config


@functools.cache
def tiny_model(chunked: bool = False, mixer: str = "lssvwm") -> WorldModel:
    model = nnx.eval_shape(lambda: WorldModel(tiny_config(chunked, mixer), rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(model)
    rng = np.random.default_rng(3)

    def fill(leaf):
        std = 0.3 if len(leaf.shape) < 2 else 1.0 / np.sqrt(leaf.shape[0])
        return jnp.asarray(std * rng.standard_normal(leaf.shape), leaf.dtype)

    return nnx.merge(graphdef, jax.tree.map(fill, state))


def frames_and_poses(batch: int, frames: int, seed: int = 0):
    """Frames in [-1, 1] [b, t, 8, 8, 3] and poses (x, y, heading) [b, t, 3]."""
    rng = np.random.default_rng(seed)
    video = rng.uniform(-1, 1, (batch, frames, 8, 8, 3))
    poses = np.concatenate(
        [rng.uniform(0, 8, (batch, frames, 2)), rng.uniform(-3, 3, (batch, frames, 1))], -1
    )
    return jnp.asarray(video, jnp.float32), jnp.asarray(poses, jnp.float32)
