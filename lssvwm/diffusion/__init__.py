"""Noise schedules, the diffusion-forcing objective with clean-prefix training, samplers.

config = DiffusionConfig.from_mapping(config_file.diffusion)   # section: default_config()
loss, metrics = diffusion_forcing_loss(model, batch, rng, config)   # jit/grad-able
sampler = Sampler(model, config)
cache = sampler.prefill(context_frames, context_actions, rng)    # parallel pass
frames, cache = sampler.generate(cache, actions, rng)            # jitted unit by unit
"""

from lssvwm.diffusion.clean_prefix import (
    allowed_prefix_lengths,
    context_levels,
    sample_clean_prefix,
    training_noise_levels,
)
from lssvwm.diffusion.config import (
    NOISE_DISTRIBUTIONS,
    SCHEDULES,
    TARGETS,
    DiffusionConfig,
    default_config,
)
from lssvwm.diffusion.ddim import ddim_sample, ddim_update, sampling_times
from lssvwm.diffusion.feedback import feed_back
from lssvwm.diffusion.noise_levels import sample_levels, sample_noise_levels
from lssvwm.diffusion.objective import (
    NoisedFrames,
    diffusion_forcing_loss,
    draw_training_inputs,
    masked_frame_loss,
    noise_frames,
)
from lssvwm.diffusion.sampler import Sampler
from lssvwm.diffusion.schedules import NoiseSchedule
from lssvwm.diffusion.targets import per_frame, training_target, x0_and_eps

__all__ = [
    "NOISE_DISTRIBUTIONS",
    "SCHEDULES",
    "TARGETS",
    "DiffusionConfig",
    "NoiseSchedule",
    "NoisedFrames",
    "Sampler",
    "allowed_prefix_lengths",
    "context_levels",
    "ddim_sample",
    "ddim_update",
    "default_config",
    "diffusion_forcing_loss",
    "draw_training_inputs",
    "feed_back",
    "masked_frame_loss",
    "noise_frames",
    "per_frame",
    "sample_clean_prefix",
    "sample_levels",
    "sample_noise_levels",
    "sampling_times",
    "training_noise_levels",
    "training_target",
    "x0_and_eps",
]
