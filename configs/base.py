r"""The shared base of every experiment config: `config()` returns the sections they all start from.

An experiment file reads top to bottom: `config = base.config()` (or a family's config built on
it, e.g. configs/maze3d_family.py), then its own changes with their reasons. This module is no
experiment (it has no `get_config`); configs/quickstart.py is this base as it is.

The sections (what lssvwm/train.py reads): `seed`; `data` (lssvwm/data/config.py); `model`
(lssvwm.models.WorldModelConfig); `diffusion` (lssvwm.diffusion.DiffusionConfig); `optimizer`
(lssvwm/training/optimizer.py); `training`; `mesh` (lssvwm/parallel/mesh.py); `eval`; `sample`.
Optional sections an experiment adds: `curriculum` (lssvwm/training/curriculum.py) and `state`
(lssvwm/training/state_carrying.py).

The recipe, sized for a CPU (2 cores): a ~2M-parameter LSSVWM on 32x32 frames of the built-in
maze in 8x8 patches, i.e. 16 tokens per frame -- tokens per frame dominate the cost. The maze's
motion per frame is doubled from the dataset default (half-metre steps, 30-degree turns) so that
copying the last frame is a weak predictor and the actions carry real information; the actions
are the discrete ones, the most direct signal. The model predicts the clean frame (x0), and
training noise levels are skewed toward high noise (logit-normal, mean 1): the action signal
lives there.

`config(tiny=True)` is the same recipe shrunk to a seconds-long smoke run (16x16 frames, 2 layers,
8-frame windows, 4 steps, a two-episode dataset): configs/quickstart.py:tiny and the `tiny`
options of the ablations, for tests.
"""

import ml_collections

from lssvwm import parallel
from lssvwm.data.config import maze3d_defaults
from lssvwm.diffusion import default_config as diffusion_defaults
from lssvwm.training.optimizer import default_config as optimizer_defaults


def config(tiny: bool = False) -> ml_collections.ConfigDict:
    """The shared sections (the quickstart recipe); `tiny`: the seconds-long smoke size."""
    config = ml_collections.ConfigDict()
    config.seed = 0

    # Data: maze3d's "quickstart" preset ("small", 32x32, with half-metre steps and 30-degree
    # turns); `tiny` its 16x16 two-episode "quickstart_tiny".
    config.data = maze3d_defaults("quickstart_tiny" if tiny else "quickstart")

    # Model: LSSVWM, 16 tokens per frame.
    size = 16 if tiny else 32
    config.model = ml_collections.ConfigDict(
        dict(
            image_size=(size, size),
            channels=3,
            patch_size=8,
            width=32 if tiny else 128,
            depth=2 if tiny else 4,
            num_heads=2 if tiny else 4,
            mlp_ratio=4.0,
            mixer="lssvwm",
            block_sizes=("full", (1, 1)) if tiny else ("full", (2, 2)),
            attention_window=4,
            attention_chunk=None,
            max_frames=8 if tiny else 32,
            qk_norm=True,
            ssm_state=16 if tiny else 32,
            ssm_head_dim=16 if tiny else 32,
            ssm_expand=2,
            ssm_groups=1,
            ssm_conv_kernel=4,
            ssm_chunk_size=32,  # measured fastest on CPU here (64: ~15% slower per step)
            action_mode="discrete",
            num_actions=5,
            pose_scale=11.0,  # maze side in metres (5x5 cells)
            relative_pose_scale=0.5,
            pose_frequencies=0,  # Fourier octaves of the absolute pose (0: raw features)
            pose_rope_frequencies=0,  # attention pairs turned by the pose (0: none)
            pose_rope_ssm=False,  # the SSM's B and C pairs turned by the same angles too
            frequency_dim=32 if tiny else 128,
            noise_level_scale=1000.0,
            # Precision: compute dtype and parameter dtype (flax's dtype / param_dtype).
            # Mixed precision is dtype="bfloat16" with float32 parameters (and so float32
            # gradients, optimizer moments and EMA); the SSM scan and its state, norms, softmax,
            # the output head and the loss stay float32 (lssvwm/models/config.py).
            dtype="float32",
            param_dtype="float32",
            # jax.nn.dot_product_attention's kernel: "xla", "cudnn" (NVIDIA GPU with bfloat16
            # or float16 compute; an error elsewhere) or "auto" (cudnn where it can run, else
            # xla). A run may resume with another value.
            attention_impl="auto",
            remat=False,  # True: recompute block activations in the backward pass (memory)
        )
    )

    # Diffusion forcing: x0-prediction, noise levels skewed toward high noise (next-frame
    # prediction from noise is what the model is judged on), clean prefixes half the time.
    # x0, not v or eps: an 8x8x3 patch (192 values) passes through a 128-wide token, too narrow
    # to carry per-pixel noise, so a v/eps model cannot denoise at low noise and multi-step
    # sampling degrades (measured: DDIM 10 steps 10.9 dB vs 16.6 dB for one step); a clean
    # frame is low-dimensional and fits (as in Li & He 2025, "Back to Basics").
    config.diffusion = diffusion_defaults()
    config.diffusion.target = "x0"
    config.diffusion.noise_distribution = "logit_normal"
    config.diffusion.noise_logit_mean = 1.0
    config.diffusion.noise_logit_std = 1.0
    config.diffusion.sampler_steps = 10

    config.optimizer = optimizer_defaults()
    config.optimizer.learning_rate = 3e-3
    config.optimizer.warmup_steps = 5 if tiny else 50
    config.optimizer.ema_decay = 0.99

    config.training = ml_collections.ConfigDict(
        dict(
            steps=4 if tiny else 800,
            batch_size=2 if tiny else 8,
            window_length=8 if tiny else 32,  # frames per training window
            log_every=1 if tiny else 20,
            checkpoint_every=2 if tiny else 100,
            keep_checkpoints=3,
            eval_every=0,  # held-out figures during training (0: only at the end)
            sample_every=0,  # sample videos during training (0: only at the end)
            # A trained run's workdir to take the weights from at step 0 (fine-tuning; the
            # optimizer starts fresh; lssvwm/train.py:warm_start); "" starts from random weights.
            init_from="",
            # A step whose loss, gradient norm or parameter norm is not finite: "skip" leaves the
            # weights, optimizer and EMA as they were (counted as nonfinite_steps in the
            # metrics), "stop" ends the run naming the step; nothing non-finite is ever saved.
            nonfinite="skip",
            max_consecutive_nonfinite=10,  # under "skip": this many in a row stop the run
        )
    )
    # Devices: data parallel over all of them (one CPU here); e.g. --config.mesh.axes.fsdp=4
    # shards parameters and optimizer state four ways (lssvwm/parallel/mesh.py).
    config.mesh = parallel.default_config()
    # Held-out figures (eval_final.json): windows of the eval split, the first context_frames
    # clean, the rest at each fixed noise level.
    config.eval = ml_collections.ConfigDict(
        dict(
            num_windows=4 if tiny else 32,
            batch_size=2 if tiny else 8,
            context_frames=4 if tiny else 16,
            noise_levels=(0.25, 0.5, 0.75, 1.0),
            seed=0,
        )
    )
    # Sample video: continue held-out windows after a context with the sampler.
    config.sample = ml_collections.ConfigDict(
        dict(
            num_windows=1 if tiny else 2,
            window_length=6 if tiny else 32,
            context_frames=4 if tiny else 16,
            sampler_steps=2 if tiny else 10,
            seed=0,
        )
    )
    return config
