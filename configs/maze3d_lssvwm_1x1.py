r"""The maze3d experiment (LSSVWM) with block size 1x1 (per-position scans) in every layer.

Six layers, as many parameters (FAMILY in configs/maze3d_family.py); everything else equal.

python -m lssvwm.train --config=configs/maze3d_lssvwm_1x1.py --workdir=/tmp/maze3d_lssvwm_1x1
"""

from . import maze3d_family


def get_config(arg=None):
    del arg  # the family member is this file's only difference
    return maze3d_family.config("lssvwm_1x1")
