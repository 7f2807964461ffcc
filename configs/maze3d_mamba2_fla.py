r"""The maze3d experiment with the `mamba2_fla` mixer (the paper's Mamba2+FLA).

One full-frame Mamba-2 scan + k = 4 frame attention; six layers, as many parameters as LSSVWM
(FAMILY in configs/maze3d_family.py).

python -m lssvwm.train --config=configs/maze3d_mamba2_fla.py --workdir=/tmp/maze3d_mamba2_fla
"""

from . import maze3d_family


def get_config(arg=None):
    del arg  # the family member is this file's only difference
    return maze3d_family.config("mamba2_fla")
