r"""The CPU-scale maze3d experiment: LSSVWM on 32x32 maze frames, 64 tokens per frame.

    python -m lssvwm.train --config=configs/maze3d_lssvwm.py --workdir=/tmp/maze3d_lssvwm

Siblings that differ only in the sequence mixer (same data, diffusion, optimizer, schedule):
    python -m lssvwm.train --config=configs/maze3d_causal_full.py --workdir=/tmp/maze3d_full
    python -m lssvwm.train --config=configs/maze3d_causal_window.py --workdir=/tmp/maze3d_window

The model is the CPU network of configs/network_cpu.py (4x4 patches, width 128, 4 layers),
conditioned on the absolute pose (the maze default, ARCHITECTURE.md). The data, diffusion and
training recipe follow configs/quickstart.py, trained longer.
"""

import ml_collections

from configs import common, network_cpu, quickstart

MIXERS = ("lssvwm", "causal_full", "causal_window")


def maze3d_config(mixer: str) -> ml_collections.ConfigDict:
    """The experiment with sequence mixer `mixer` (every other field shared)."""
    if mixer not in MIXERS:
        raise ValueError(f"unknown maze3d experiment mixer {mixer!r}; known: {MIXERS}")
    config = quickstart.get_config()
    config.model = network_cpu.get_config(f"mixer={mixer}").model
    config.model.pose_scale = 11.0  # side of the "small" preset's 5x5-cell maze in metres
    config.model.relative_pose_scale = 0.5  # metres per forward step (steps_per_block = 2)
    config.optimizer.learning_rate = 1e-3
    config.optimizer.warmup_steps = 500
    config.optimizer.ema_decay = 0.999
    config.training.steps = 20_000
    config.training.log_every = 50
    config.training.checkpoint_every = 1000
    config.training.eval_every = 2000
    config.training.sample_every = 5000
    config.diffusion.sampler_steps = 20
    config.sample.sampler_steps = 20
    return config


def get_config(arg=None):
    arg = common.parse_arg(arg, mixer="lssvwm")
    return maze3d_config(arg.mixer)
