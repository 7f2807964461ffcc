r"""The paper-scale models (~200M parameters each) for accelerator pods.

    python -m lssvwm.train --config=configs/paper_200m.py --workdir=DIR              # LSSVWM
    python -m lssvwm.train --config=configs/paper_200m.py:mixer=causal_window ...    # a baseline
    python -m experiments.aot_memory.aot_memory --config=configs/paper_200m.py --devices=8

What the paper states (../shared/design/PAPER.md, Po et al. 2025) and what is chosen here:
  * every model ~200M parameters, matched by layer count: width 768 and the depth per mixer in
    DEPTHS (LSSVWM 12 layers = 195M; Mamba-2 only 17 = 205M; transformers 19 = 204M);
  * frame-local attention k = 10 frames in chunks of 5 (bidirectional within a chunk, plus the
    previous chunk), so LSSVWM generates 5 frames per unit; the sliding-window baseline sees 192
    frames, the full-context one everything;
  * training: 400-frame windows for 150K steps, then 800-frame windows for 250K (the maze
    reasoning schedule), the clean prefix with p = 0.5 longer than half the window (the
    diffusion defaults);
  * not stated by the paper and chosen here: 64x64 maze3d frames (Memory Maze's size) in 4x4
    patches (16x16 tokens per frame; no VAE), block sizes cycling full frame / 4x4 / 2x2 / 1x1,
    Mamba-2 state 64 and head dim 64, a global batch of 32 windows, AdamW 3e-4 with 2K warm-up
    steps, v-prediction, 20 DDIM steps.
The global batch is split over the `data` axis and the parameters and optimizer state over
`fsdp` (default: FSDP over every device, so per-device memory falls with the device count);
`experiments/aot_memory` compiles a train step ahead of time and reports what it needs.
"""

from lssvwm.data.config import maze3d_defaults
from lssvwm.training import curriculum

from . import base, common

WIDTH = 768
DEPTHS = {"lssvwm": 12, "mamba2_fla": 12, "mamba2": 17, "causal_window": 19, "causal_full": 19}
STAGE_LENGTHS = (400, 800)  # frames per training window, per stage
STAGE_STEPS = (150_000, 250_000)
VARIANTS = tuple(f"mixer={m}" for m in DEPTHS if m != "lssvwm")


def get_config(arg=None):
    arg = common.parse_arg(arg, mixer="lssvwm")
    if arg.mixer not in DEPTHS:
        raise ValueError(f"unknown mixer {arg.mixer!r} for the paper config; known: {list(DEPTHS)}")
    config = base.config()
    config.data = maze3d_defaults("default")  # 64x64 frames, 1,024-frame episodes
    chunked = arg.mixer in ("lssvwm", "mamba2_fla")
    config.model.update(
        image_size=(64, 64),
        patch_size=4,
        width=WIDTH,
        depth=DEPTHS[arg.mixer],
        num_heads=WIDTH // 64,
        mixer=arg.mixer,
        block_sizes=("full", (4, 4), (2, 2), (1, 1)),
        attention_window=192 if arg.mixer == "causal_window" else 10,
        attention_chunk=5 if chunked else None,
        max_frames=max(STAGE_LENGTHS),
        ssm_state=64,
        ssm_head_dim=64,
        action_mode="pose_and_motion",
        num_actions=0,
        pose_scale=19.0,  # side of the default preset's 9x9-cell maze in metres
        relative_pose_scale=0.25,  # metres per forward step (steps_per_block 4)
        remat=True,  # 800-frame windows: recompute block activations in the backward pass
    )
    config.diffusion.update(target="v", sampler_steps=20)
    config.optimizer.update(learning_rate=3e-4, warmup_steps=2_000, ema_decay=0.9999)
    config.training.update(
        steps=sum(STAGE_STEPS),
        batch_size=32,
        window_length=STAGE_LENGTHS[-1],
        log_every=100,
        checkpoint_every=2_000,
        eval_every=10_000,
        sample_every=50_000,
    )
    config.curriculum = curriculum.default_config()
    config.curriculum.update(kind="stages", lengths=STAGE_LENGTHS, stage_steps=STAGE_STEPS[:1])
    config.mesh.axes.update(data=1, fsdp=-1)
    config.eval.update(context_frames=400, batch_size=4)
    config.sample.update(num_windows=1, context_frames=400, window_length=800, sampler_steps=20)
    return config
