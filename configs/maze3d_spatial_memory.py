r"""The maze3d experiment with the `spatial_memory` mixer (RGB-D frames, no SSM).

k = 4 frame attention + a projected geometric memory; nine layers, to match LSSVWM's parameters
(FAMILY in configs/maze3d_family.py).

python -m lssvwm.train --config=configs/maze3d_spatial_memory.py --workdir=/tmp/maze3d_memory
"""

from . import maze3d_family


def get_config(arg=None):
    del arg  # the family member is this file's only difference
    return maze3d_family.config("spatial_memory")
