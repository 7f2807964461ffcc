r"""The maze3d experiment with the `causal_full` mixer: attention over every previous frame.

Nine layers to match LSSVWM's parameter count (FAMILY in configs/maze3d_family.py); everything
else equal.

python -m lssvwm.train --config=configs/maze3d_causal_full.py --workdir=/tmp/maze3d_causal_full
"""

from . import maze3d_family


def get_config(arg=None):
    del arg  # the family member is this file's only difference
    return maze3d_family.config("causal_full")
