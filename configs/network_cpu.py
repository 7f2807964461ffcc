"""CPU-sized world-model network: the `model` section shared by CPU runs and network benchmarks.

    python -m experiments.bench_network.bench_network --config=configs/network_cpu.py
    configs/network_cpu.py:mixer=causal_full       one of lssvwm, mamba2_fla, mamba2,
                                                   causal_window, causal_full
    configs/network_cpu.py:mixer=lssvwm,chunked    the paper's chunked attention window

32x32 RGB frames in 4x4 patches (an 8x8 token grid), width 128, 4 layers. LSSVWM's attention
window is short (k = 4 frames) next to the 32-frame training window, so memory beyond the window
must come from the SSM; the sliding-window transformer sees W = 16 frames.
"""

import ml_collections

from . import common

VARIANTS = (
    "mixer=mamba2_fla",
    "mixer=mamba2",
    "mixer=causal_window",
    "mixer=causal_full",
    "mixer=lssvwm,chunked",
    "action_mode=discrete",
)


def get_config(arg=None):
    arg = common.parse_arg(arg, mixer="lssvwm", chunked=False, action_mode="pose")
    config = ml_collections.ConfigDict()
    config.model = dict(
        image_size=(32, 32),
        channels=3,
        patch_size=4,
        width=128,
        depth=4,
        num_heads=4,
        mlp_ratio=4.0,
        mixer=arg.mixer,
        # Per-layer block sizes of the block-wise scan (cycled): full-frame blocks for spatial
        # coherence next to small blocks whose state remembers each place over time.
        block_sizes=("full", (2, 2), (4, 4), (1, 1)),
        attention_window=16 if arg.mixer == "causal_window" else 4,
        attention_chunk=2 if arg.chunked else None,
        max_frames=32,
        qk_norm=True,
        ssm_state=32,
        ssm_head_dim=32,
        ssm_expand=2,
        ssm_groups=1,
        ssm_conv_kernel=4,
        ssm_chunk_size=64,
        action_mode=arg.action_mode,
        num_actions=4 if arg.action_mode == "discrete" else 0,
        pose_scale=8.0,  # maze side in metres
        relative_pose_scale=0.25,  # metres per step
        frequency_dim=128,
        noise_level_scale=1000.0,
        dtype="float32",
        param_dtype="float32",
    )
    config.model = ml_collections.ConfigDict(config.model)
    return config
