r"""The CPU-scale maze3d experiment: LSSVWM on 32x32 maze frames, conditioned on the camera pose.

    python -m lssvwm.train --config=configs/maze3d_lssvwm.py --workdir=/tmp/maze3d_lssvwm

The LSSVWM member of the maze3d family (configs/maze3d_family.py: the recipe shared by the family,
what it changes from configs/base.py and why, and `FAMILY`). The baselines are the same experiment
with another sequence mixer, one file each or `:mixer=NAME`:
    python -m lssvwm.train --config=configs/maze3d_mamba2.py --workdir=/tmp/maze3d_mamba2
    python -m lssvwm.train --config=configs/maze3d_lssvwm.py:mixer=mamba2 --workdir=...  # same
`python -m configs.maze3d_lssvwm` prints the family's parameter counts.
"""

from . import common, maze3d_family


def get_config(arg=None):
    arg = common.parse_arg(arg, mixer="lssvwm")
    return maze3d_family.config(arg.mixer)


if __name__ == "__main__":  # the family's parameter counts (shapes only: seconds)
    counts = maze3d_family.parameter_counts()
    for name, count in counts.items():
        layers = maze3d_family.config(name).model.depth
        change = count / counts["lssvwm"] - 1
        print(f"{name:15s} {layers:2d} layers {count:10,d} parameters {change:+.1%}")
