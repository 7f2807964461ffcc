r"""The maze3d experiment with the `mamba2` mixer: one full-frame Mamba-2 scan, no attention.

Eight layers to match LSSVWM's parameter count (FAMILY in configs/maze3d_family.py); everything
else equal.

python -m lssvwm.train --config=configs/maze3d_mamba2.py --workdir=/tmp/maze3d_mamba2
"""

from . import maze3d_family


def get_config(arg=None):
    del arg  # the family member is this file's only difference
    return maze3d_family.config("mamba2")
