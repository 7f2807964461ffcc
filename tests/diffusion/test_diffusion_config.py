"""The `diffusion` config section: defaults round-trip, unknown keys and bad values are clear."""

import pytest

from lssvwm.diffusion import DiffusionConfig, default_config


def test_default_section_round_trips():
    section = default_config()
    config = DiffusionConfig.from_mapping(section)
    assert config == DiffusionConfig() and hash(config)
    assert config.target == "v" and config.clean_prefix_prob == 0.5
    assert config.clean_prefix_min_fraction == 0.5
    section.sampler_steps = 7  # a command-line override
    assert DiffusionConfig.from_mapping(section).sampler_steps == 7


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(sampler_stpes=4), "diffusion.sampler_stpes is unknown"),
        (dict(schedule="cosinus"), "diffusion.schedule must be one of"),
        (dict(target="velocity"), "diffusion.target must be one of"),
        (dict(noise_distribution="beta"), "diffusion.noise_distribution must be one of"),
        (dict(clean_prefix_prob=1.5), "clean_prefix_prob must be in"),
        (dict(clean_prefix_min_fraction=1.0), "clean_prefix_min_fraction must be in"),
        (dict(context_noise=-0.1), "context_noise must be in"),
        (dict(sampler_steps=0), "sampler_steps must be >= 1"),
        (dict(sampler_steps=2.5), "sampler_steps must be an int"),
        (dict(sampler_eta=-1.0), "sampler_eta must be >= 0"),
        (dict(logsnr_min=5.0, logsnr_max=1.0), "logsnr_min"),
        (dict(noise_power=0.0), "noise_power must be > 0"),
        (dict(noise_logit_std=float("nan")), "noise_logit_std must be finite"),
        (dict(chunk_synchronous="yes"), "chunk_synchronous must be a bool"),
        (dict(logsnr_shift="1"), "logsnr_shift must be a number"),
    ],
)
def test_bad_values_are_clear(changes, message):
    with pytest.raises(ValueError, match=message):
        DiffusionConfig.from_mapping({**DiffusionConfig().to_dict(), **changes})
