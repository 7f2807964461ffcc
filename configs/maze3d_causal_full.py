r"""configs/maze3d_lssvwm.py with the `causal_full` mixer: attention over every previous frame.

Nine layers to match LSSVWM's parameter count (FAMILY there); everything else equal.

python -m lssvwm.train --config=configs/maze3d_causal_full.py --workdir=/tmp/maze3d_causal_full
"""

from configs import maze3d_lssvwm


def get_config(arg=None):
    del arg  # the family member is this file's only difference
    return maze3d_lssvwm.maze3d_config("causal_full")
