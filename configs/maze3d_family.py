r"""The maze3d family: LSSVWM and its parameter-matched baselines on 32x32 maze frames, conditioned
on the camera pose. A family definition, not an experiment (it has no `get_config`): the files
configs/maze3d_<member>.py (and `configs/maze3d_lssvwm.py:mixer=NAME`) are its members, and
configs/maze3d_memory.py and the ablations build on `config(member)`.

Every member shares data, diffusion, optimizer, schedule and every model field but its mixer's
own (`FAMILY` below: the mixer, the layer count that matches LSSVWM's parameter count, and the
mixer's own fields). `python -m configs.maze3d_lssvwm` prints the family's parameter counts.

What differs from configs/base.py (the quickstart recipe), and why:
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

from . import base

LOCAL_WINDOW = 4  # k: frames the frame-local attention of LSSVWM (and Mamba2+FLA) sees
CONTROL_WINDOW = 16  # frames the sliding-window control attends to (half the training window)

# The spatial-memory variant: RGB-D frames (depth from the dataset), a ring of the last 32 frames'
# tokens: the whole training window and every retrieval distance of the probe (context 16 + 15
# back), entering the generator before the first block.
SPATIAL_MEMORY = dict(
    memory_store="ring",
    memory_frames=32,
    memory_layers="input",
    memory_dropout=0.1,
    memory_entry_dropout=0.1,
    memory_feature_noise=0.0,
    depth_near=0.25,
    depth_pool="min",
)

# The family: the model fields each member sets on top of the shared ones in `config`.
# Parameters are matched to LSSVWM's by the layer count (the paper's way; width and every other
# field shared), all within 5%; parameter counts from lssvwm.models.count_parameters.
FAMILY = {
    # 2,865,104: block-wise Mamba-2 (block sizes full / 2x2 / 1x1 cycled) + k = 4 frame attention.
    "lssvwm": dict(mixer="lssvwm", depth=6),
    # 2,865,104: LSSVWM with per-position scans (block size 1x1) in every layer.
    "lssvwm_1x1": dict(mixer="lssvwm", depth=6, block_sizes=((1, 1),)),
    # 2,865,104: one full-frame Mamba-2 scan + k = 4 frame attention (the paper's Mamba2+FLA).
    "mamba2_fla": dict(mixer="mamba2_fla", depth=6),
    # 2,854,656 (-0.4%): one full-frame Mamba-2 scan, no attention.
    "mamba2": dict(mixer="mamba2", depth=8),
    # 2,800,640 (-2.2%): attention over every previous frame, no SSM.
    "causal_full": dict(mixer="causal_full", depth=9),
    # 2,800,640 (-2.2%): attention over the last W = 16 frames, no SSM.
    "causal_window": dict(mixer="causal_window", depth=9, attention_window=CONTROL_WINDOW),
    # 2,852,416 (-0.4%): k = 4 frame attention + the projected geometric memory, no SSM.
    "spatial_memory": dict(mixer="spatial_memory", depth=9, **SPATIAL_MEMORY),
}


def config(member: str) -> ml_collections.ConfigDict:
    """The maze3d experiment for family member `member` (FAMILY; every other field shared)."""
    if member not in FAMILY:
        raise ValueError(f"unknown maze3d experiment {member!r}; known: {tuple(FAMILY)}")
    config = base.config()
    config.model.update(
        block_sizes=("full", (2, 2), (1, 1)),  # only the lssvwm mixer reads them
        attention_window=LOCAL_WINDOW,  # mamba2 has no attention and ignores it
        action_mode="pose_and_motion",
        num_actions=0,
        pose_scale=11.0,  # side of the "small" preset's 5x5-cell maze in metres
        relative_pose_scale=0.5,  # metres per forward step (base data: steps_per_block 2)
    )
    config.model.update(FAMILY[member])
    config.optimizer.learning_rate = 2e-3
    config.optimizer.warmup_steps = 100
    config.optimizer.ema_decay = 0.995
    config.training.update(
        steps=2000, log_every=50, checkpoint_every=250, eval_every=500, sample_every=1000
    )
    return config


def parameter_counts() -> dict[str, int]:
    """Each member's parameter count (shapes only: seconds)."""
    from lssvwm.models import WorldModelConfig, count_parameters

    return {
        member: count_parameters(WorldModelConfig.from_mapping(config(member).model.to_dict()))
        for member in FAMILY
    }
