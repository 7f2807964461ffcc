r"""The CPU-scale maze3d experiment: LSSVWM on 32x32 maze frames, conditioned on the camera pose.

    python -m lssvwm.train --config=configs/maze3d_lssvwm.py --workdir=/tmp/maze3d_lssvwm

Siblings that differ only in the sequence mixer (same data, diffusion, optimizer, schedule):
    python -m lssvwm.train --config=configs/maze3d_causal_full.py --workdir=/tmp/maze3d_full
    python -m lssvwm.train --config=configs/maze3d_causal_window.py --workdir=/tmp/maze3d_window

What differs from configs/quickstart.py, and why:
  * actions are the camera pose (x, y, heading), the maze default of ARCHITECTURE.md, embedded
    as `pose_and_motion`: the absolute pose tells the model where each frame was taken (what the
    memory tasks, retrieval and reasoning, need) and the motion from the previous frame tells it
    how the view changes next. With the absolute pose alone (`action_mode="pose"`, the first
    version of this experiment) the trained model hardly used it (validation loss with true vs
    shuffled poses 0.0750 vs 0.0793; with `pose_and_motion` 0.0653 vs 0.1027) and mispredicted
    the first frame of a walk back (10.6 dB, below copying the last frame, 13.2; now 15.7);
  * six layers cycling the block sizes full frame / 2x2 / per position, so every scan
    granularity of the method is present;
  * LSSVWM's attention window stays short (k = 4 frames) next to the 32-frame training window,
    so memory beyond it must come from the SSM; the sliding-window control sees W = 16 frames;
  * trained longer, with a lower peak learning rate and slower EMA.
Patch 8 (16 tokens per frame) as in the quickstart: tokens per frame dominate the cost on CPU, and
at 64 tokens per frame (configs/network_cpu.py) a step costs ~4x as much -- too slow to train
to the memory regime on a laptop. Override `model.patch_size=4` on an accelerator.
"""

import ml_collections

from configs import common, quickstart

MIXERS = ("lssvwm", "causal_full", "causal_window")
CONTROL_WINDOW = 16  # frames the sliding-window control attends to (half the training window)


def maze3d_config(mixer: str) -> ml_collections.ConfigDict:
    """The experiment with sequence mixer `mixer` (every other field shared)."""
    if mixer not in MIXERS:
        raise ValueError(f"unknown maze3d experiment mixer {mixer!r}; known: {MIXERS}")
    config = quickstart.get_config()
    config.model.update(
        mixer=mixer,
        depth=6,
        block_sizes=("full", (2, 2), (1, 1)),
        attention_window=CONTROL_WINDOW if mixer == "causal_window" else 4,
        action_mode="pose_and_motion",
        num_actions=0,
        pose_scale=11.0,  # side of the "small" preset's 5x5-cell maze in metres
        relative_pose_scale=0.5,  # metres per forward step (quickstart data: steps_per_block 2)
    )
    config.optimizer.learning_rate = 2e-3
    config.optimizer.warmup_steps = 100
    config.optimizer.ema_decay = 0.995
    config.training.update(
        steps=2000, log_every=50, checkpoint_every=250, eval_every=500, sample_every=1000
    )
    return config


def get_config(arg=None):
    arg = common.parse_arg(arg, mixer="lssvwm")
    return maze3d_config(arg.mixer)
