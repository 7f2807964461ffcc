r"""The length-curriculum ablation on the maze3d experiment (LSSVWM, configs/maze3d_family.py).

    python -m lssvwm.train --config=configs/ablation_curriculum.py:schedule=stages --workdir=DIR

  schedule=none      a fixed 32-frame window (the maze3d config as is)
  schedule=stages    16 frames for the first half of training, then 32 (the paper's 400 -> 800
                     frames, scaled to this experiment)
  schedule=linear    sequence-length warm-up from 8 to 32 frames over the first half, in buckets
                     of 8 frames (4 window lengths, so 4 compilations)
  constant_tokens    scale the batch so frames per step stay about 8 x 32 (16 x 16, then 8 x 32)
  carry              also carry the state across consecutive windows (configs/ablation_state.py's
                     `carried` policy): the windows grow, and the state runs through the episode
  tiny               configs/base.py's seconds-long tiny size, as quickstart:tiny (8-frame
                     windows; stages 4 -> 8)

Lengths are bucketed, so jit compiles once per stage; the stage is a function of the step, so a
resumed run continues the curriculum exactly; the clean prefix is a fraction of each stage's
own window.
"""

from lssvwm.training import curriculum, state_carrying

from . import base, common, maze3d_family

SCHEDULES = ("none", "stages", "linear")
VARIANTS = (
    "schedule=stages",
    "schedule=linear",
    "schedule=stages,constant_tokens",
    "schedule=stages,carry",
    "schedule=stages,tiny",
    "schedule=linear,tiny,carry",
)


def get_config(arg=None):
    arg = common.parse_arg(arg, schedule="stages", constant_tokens=False, carry=False, tiny=False)
    if arg.schedule not in SCHEDULES:
        raise ValueError(f"unknown curriculum schedule {arg.schedule!r}; known: {SCHEDULES}")
    config = base.config(tiny=True) if arg.tiny else maze3d_family.config("lssvwm")
    final = int(config.training.window_length)  # 32 (tiny: 8)
    half = int(config.training.steps) // 2
    config.curriculum = curriculum.default_config()
    config.curriculum.constant_tokens = arg.constant_tokens
    if arg.schedule == "stages":
        config.curriculum.update(kind="stages", lengths=(final // 2, final), stage_steps=(half,))
    elif arg.schedule == "linear":
        bucket = final // 4  # 8 (tiny: 2, starting at 4 so that a clean prefix fits)
        config.curriculum.update(
            kind="linear", start_length=max(bucket, 4), warmup_steps=max(half, 1), bucket=bucket
        )
    # The state: each window from the zero state (configs/ablation_state.py's `plain` policy), or
    # with `carry` its `carried` policy (consecutive windows, the state carried across them).
    config.state = state_carrying.default_config()
    if arg.carry:
        config.state.carry = True
    return config
