"""Per-frame / chunk-synchronous noise levels and the clean-prefix rule (mask, lengths)."""

import functools

import jax
import numpy as np
import pytest

from lssvwm.diffusion import (
    DiffusionConfig,
    allowed_prefix_lengths,
    sample_clean_prefix,
    sample_levels,
    sample_noise_levels,
    training_noise_levels,
)

DRAWS = 20_000


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _prefix(rng, batch, frames, prob, min_fraction, chunk):
    return sample_clean_prefix(
        rng, batch, frames, prob=prob, min_fraction=min_fraction, chunk=chunk
    )


@pytest.mark.parametrize(
    ("frames", "prob", "min_fraction", "chunk"),
    [(16, 0.5, 0.5, 1), (32, 0.3, 0.6, 4)],
)
def test_prefix_mask_and_length_distribution(frames, prob, min_fraction, chunk):
    clean, length = map(
        np.asarray, _prefix(jax.random.key(1), DRAWS, frames, prob, min_fraction, chunk)
    )
    assert clean.shape == (DRAWS, frames) and clean.dtype == bool and length.shape == (DRAWS,)
    # The mask is exactly a prefix of the drawn length.
    np.testing.assert_array_equal(clean, np.arange(frames)[None] < length[:, None])
    has = length > 0
    assert abs(has.mean() - prob) < 4 * np.sqrt(prob * (1 - prob) / DRAWS)
    drawn = length[has]
    assert np.all(drawn > min_fraction * frames)  # longer than the fraction (paper: > half)
    assert np.all(drawn % chunk == 0)  # whole chunks
    assert np.all(drawn <= frames - chunk)  # at least one noisy unit left
    allowed = allowed_prefix_lengths(frames, min_fraction, chunk)
    np.testing.assert_array_equal(np.unique(drawn), allowed)  # every allowed length occurs ...
    counts = np.array([(drawn == n).sum() for n in allowed])
    expected = drawn.size / allowed.size  # ... uniformly
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))


def test_allowed_lengths_and_errors():
    np.testing.assert_array_equal(allowed_prefix_lengths(8, 0.5, 1), [5, 6, 7])
    np.testing.assert_array_equal(allowed_prefix_lengths(12, 0.5, 2), [8, 10])
    np.testing.assert_array_equal(allowed_prefix_lengths(10, 0.0, 5), [5])
    with pytest.raises(ValueError, match="not a whole number of chunks"):
        allowed_prefix_lengths(10, 0.5, 4)
    with pytest.raises(ValueError, match="no clean-prefix length fits"):
        allowed_prefix_lengths(4, 0.5, 2)
    clean, length = sample_clean_prefix(
        jax.random.key(0), 3, 4, prob=0.0, min_fraction=0.5, chunk=2
    )
    assert not np.asarray(clean).any() and not np.asarray(length).any()  # p = 0: never checked


@pytest.mark.parametrize(
    ("changes", "mean"),
    [
        (dict(noise_distribution="uniform"), 0.5),
        (dict(noise_distribution="power", noise_power=3.0), 0.75),  # density 3 t^2
        (dict(noise_distribution="logit_normal", noise_logit_mean=1.0), None),
    ],
)
def test_level_distributions(changes, mean):
    config = DiffusionConfig(**changes)
    t = np.asarray(
        jax.jit(sample_levels, static_argnums=(1, 2))(jax.random.key(2), (DRAWS,), config)
    )
    assert t.min() > 0 and t.max() <= 1
    if mean is None:  # logit-normal: compare with numpy's draw of the same law
        reference = 1 / (1 + np.exp(-(1.0 + np.random.default_rng(0).standard_normal(DRAWS))))
        np.testing.assert_allclose(
            np.quantile(t, [0.1, 0.5, 0.9]), np.quantile(reference, [0.1, 0.5, 0.9]), atol=0.02
        )
        assert t.mean() > 0.6  # skewed toward high noise
    else:
        assert abs(t.mean() - mean) < 0.01


@pytest.mark.parametrize("synchronous", [True, False])
def test_chunk_synchronous_levels(synchronous):
    config = DiffusionConfig(chunk_synchronous=synchronous)
    t = np.asarray(sample_noise_levels(jax.random.key(3), (64, 9), config, chunk=3))
    chunks = t.reshape(64, 3, 3)
    equal_within = np.all(chunks == chunks[..., :1])
    assert equal_within == synchronous
    assert np.all(np.diff(chunks[..., 0], axis=1) != 0)  # chunks draw independently
    t1 = np.asarray(sample_noise_levels(jax.random.key(3), (4, 10), config, chunk=4))
    assert t1.shape == (4, 10)  # a cut last chunk


@pytest.mark.parametrize("context_noise", [0.0, 0.2])
def test_training_levels_put_the_prefix_at_the_context_level(context_noise):
    config = DiffusionConfig(clean_prefix_prob=0.7, context_noise=context_noise)
    fn = jax.jit(training_noise_levels, static_argnums=(1, 2), static_argnames="chunk")
    level, clean = map(np.asarray, fn(jax.random.key(4), (2000, 8), config, chunk=2))
    assert clean.any() and (~clean).any()
    assert np.all(level[~clean] > 0)
    if context_noise == 0:
        assert np.all(level[clean] == 0)
    else:
        prefix_levels = level[clean]
        assert prefix_levels.min() >= 0 and prefix_levels.max() <= context_noise
        assert (
            prefix_levels.max() > 0.9 * context_noise and prefix_levels.min() < 0.1 * context_noise
        )
    pairs = level.reshape(2000, 4, 2)
    np.testing.assert_array_equal(pairs[..., 0], pairs[..., 1])  # chunk-synchronous (default)


@pytest.mark.parametrize("blind_suffix_prob", [0.0, 0.5, 1.0])
def test_blind_suffix_puts_every_frame_after_the_prefix_at_pure_noise(blind_suffix_prob):
    config = DiffusionConfig(clean_prefix_prob=0.6, blind_suffix_prob=blind_suffix_prob)
    fn = jax.jit(training_noise_levels, static_argnums=(1, 2), static_argnames="chunk")
    level, clean = map(np.asarray, fn(jax.random.key(5), (4000, 8), config, chunk=1))
    has_prefix = clean[:, 0]
    suffix_all_pure = np.array(
        [np.all(row[~c] == 1.0) for row, c in zip(level, clean, strict=True)]
    )
    assert not suffix_all_pure[~has_prefix].any()  # no prefix: plain diffusion forcing
    np.testing.assert_allclose(suffix_all_pure[has_prefix].mean(), blind_suffix_prob, atol=0.03)
    assert np.all(level[clean] == 0)  # the prefix stays clean
    plain = DiffusionConfig(clean_prefix_prob=0.6)
    level0, _ = map(np.asarray, fn(jax.random.key(5), (4000, 8), plain, chunk=1))
    unchanged = ~suffix_all_pure | ~has_prefix
    np.testing.assert_array_equal(level[unchanged], level0[unchanged])  # other draws unchanged
