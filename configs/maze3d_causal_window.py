r"""configs/maze3d_lssvwm.py with the `causal_window` mixer (everything else equal).

python -m lssvwm.train --config=configs/maze3d_causal_window.py --workdir=/tmp/maze3d_causal_window

`:window=W` sets the attention window (default 16 frames). `:window=4` is LSSVWM's own attention
window, so that control differs from LSSVWM only by the SSM branch: what the SSM's memory adds.
"""

from configs import common, maze3d_lssvwm


def get_config(arg=None):
    arg = common.parse_arg(arg, window=maze3d_lssvwm.CONTROL_WINDOW)
    config = maze3d_lssvwm.maze3d_config("causal_window")
    if arg.window < 1:
        raise ValueError(f"window must be >= 1 frame, got {arg.window}")
    config.model.attention_window = arg.window
    return config
