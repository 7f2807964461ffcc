r"""configs/maze3d_lssvwm.py with the `mamba2_fla` mixer (the paper's Mamba2+FLA).

One full-frame Mamba-2 scan + k = 4 frame attention; six layers, as many parameters as LSSVWM.

python -m lssvwm.train --config=configs/maze3d_mamba2_fla.py --workdir=/tmp/maze3d_mamba2_fla
"""

from configs import maze3d_lssvwm


def get_config(arg=None):
    del arg  # the family member is this file's only difference
    return maze3d_lssvwm.maze3d_config("mamba2_fla")
