r"""The maze3d experiment with the `causal_window` mixer: attention over the last W frames.

Nine layers to match LSSVWM's parameter count (FAMILY in configs/maze3d_family.py); everything
else equal.

python -m lssvwm.train --config=configs/maze3d_causal_window.py --workdir=/tmp/maze3d_causal_window

`:window=W` sets the attention window (default 16 frames). `:window=4` is LSSVWM's own attention
window: LSSVWM without its SSM branch, at matched parameters (`--config.model.depth=6`: at
matched layers instead, as the runs of experiments/state_carrying).
"""

from . import common, maze3d_family


def get_config(arg=None):
    arg = common.parse_arg(arg, window=maze3d_family.CONTROL_WINDOW)
    config = maze3d_family.config("causal_window")
    if arg.window < 1:
        raise ValueError(f"window must be >= 1 frame, got {arg.window}")
    config.model.attention_window = arg.window
    return config
