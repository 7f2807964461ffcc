r"""configs/maze3d_lssvwm.py with the `spatial_memory` mixer (RGB-D frames, no SSM).

k = 4 frame attention + a projected geometric memory; nine layers, to match LSSVWM's parameters.

python -m lssvwm.train --config=configs/maze3d_spatial_memory.py --workdir=/tmp/maze3d_memory
"""

from configs import maze3d_lssvwm


def get_config(arg=None):
    del arg  # the family member is this file's only difference
    return maze3d_lssvwm.maze3d_config("spatial_memory")
