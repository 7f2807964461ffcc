r"""configs/maze3d_lssvwm.py with block size 1x1 (per-position scans) in every layer.

Six layers, as many parameters (FAMILY there); everything else equal.

python -m lssvwm.train --config=configs/maze3d_lssvwm_1x1.py --workdir=/tmp/maze3d_lssvwm_1x1
"""

from configs import maze3d_lssvwm


def get_config(arg=None):
    del arg  # the family member is this file's only difference
    return maze3d_lssvwm.maze3d_config("lssvwm_1x1")
