r"""configs/maze3d_lssvwm.py with the `mamba2` mixer: one full-frame Mamba-2 scan, no attention.

Eight layers to match LSSVWM's parameter count (FAMILY there); everything else equal.

python -m lssvwm.train --config=configs/maze3d_mamba2.py --workdir=/tmp/maze3d_mamba2
"""

from configs import maze3d_lssvwm


def get_config(arg=None):
    del arg  # the family member is this file's only difference
    return maze3d_lssvwm.maze3d_config("mamba2")
