r"""The memory world: the maze3d family on a task where remembering beyond the window is learnable
on 2 CPU cores (issue "the memory result at CPU scale").

    python -m lssvwm.train --config=configs/maze3d_memory.py:mixer=causal_full --workdir=DIR
    python -m experiments.memory.run          # every model, probes and the table (README there)

The family, its parameter matching and every model field are those of `configs/maze3d_family.py`
(`FAMILY`, same layer counts); what changes, and why:
  * 16x16 frames in 8x8 patches: 4 tokens per frame instead of 16, so a step costs a fraction
    and a model trains several times more steps per hour (measured before: full-context 3.1
    instead of 0.9 steps/s at 32-frame windows);
  * out-and-back walks on half the frames (`retrace_fraction` 0.5), each 16 to 48 frames long:
    walking back along a path for j frames shows the view last seen about 2j frames ago, so most
    64-frame training windows hold views last seen 16-64 frames earlier -- the signal memory
    beyond the attention windows is learned from (with 8-96-frame walk-backs on a fifth of the
    frames, only ~12.5% of 32-frame windows held one starting 8 or more frames in);
  * 64-frame training windows (`max_frames`), with the attention windows kept short: LSSVWM's
    k = 4 frames, the sliding-window control's W = 16; so the probe's distance bins are
    1-4 (k), 5-16 (W), 17-64 (beyond W, inside training) and 65-128 (beyond training);
  * 2 windows per step and 3,000 steps (below);
  * LSSVWM's block sizes full frame / per position (on a 2x2 token grid a 2x2 block is the full
    frame); the spatial store holds the last 64 frames (the training window);
  * attention pairs turned by the camera pose (`pose_rope_frequencies` 4: 12 of each head's 16
    pairs, lssvwm/nn/rope.py), for every member with attention. Without it no attention model
    learned to look a view up by its pose at this budget (the full-context transformer's blind
    retrieval beyond W stayed at the no-memory floor, 11.3-11.4 dB, with blind-suffix training or
    Fourier pose features too); with it, 19.7 dB, flat with distance (experiments/memory/README).
"""

from . import common, maze3d_family

FRAME_SIZE = 16  # pixels per side, 8x8 patches: 2x2 tokens
TRAINING_WINDOW = 64  # frames per training window
MEMORY_WORLD = dict(  # data.maze3d fields on top of the maze3d family's "small" preset
    height=FRAME_SIZE,
    width=FRAME_SIZE,
    retrace_fraction=0.5,
    retrace_min=16,
    retrace_max=48,
    train_episodes=128,
    test_episodes=32,
    reasoning_episodes=16,
)
DISTANCE_EDGES = (4, 16, 64, 128)  # k, W, the training window, twice it
VARIANTS = tuple(f"mixer={name}" for name in maze3d_family.FAMILY if name != "lssvwm")


def get_config(arg=None):
    arg = common.parse_arg(arg, mixer="lssvwm")
    if arg.mixer not in maze3d_family.FAMILY:
        known = list(maze3d_family.FAMILY)
        raise ValueError(f"unknown mixer {arg.mixer!r} for the memory world; known: {known}")
    config = maze3d_family.config(arg.mixer)
    config.data.maze3d.update(MEMORY_WORLD)
    config.model.update(
        image_size=(FRAME_SIZE, FRAME_SIZE),
        max_frames=TRAINING_WINDOW,
        pose_rope_frequencies=4,
    )
    if arg.mixer == "lssvwm":  # lssvwm_1x1 keeps its per-position scans in every layer
        config.model.block_sizes = ("full", (1, 1))
    if config.model.mixer == "spatial_memory":
        config.model.memory_frames = TRAINING_WINDOW
    # 2 windows a step: on this CPU a step's time grows faster than its tokens (measured train
    # step, causal_full, 64-frame windows: batch 2 0.51 s, 4 1.22 s, 8 3.0 s), so small
    # batches buy the most steps an hour; 3,000 steps take ~25 min alone.
    config.training.update(
        window_length=TRAINING_WINDOW, batch_size=2, steps=3000, eval_every=1000, sample_every=0
    )
    return config
