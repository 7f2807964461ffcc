"""DDIM and the autoregressive sampler: an oracle denoiser reproduces x0, the analytic Gaussian
denoiser gives the right distribution, and the real (tiny) world model samples under jit with
a final cache equal to prefilling the context plus the generated frames."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny_diffusion_model import frames_and_poses, tiny_model

from lssvwm.diffusion import DiffusionConfig, NoiseSchedule, Sampler, ddim_sample, training_target


def _oracle(x0, config):
    """The network every target wishes for: the exact target of x given the known x0."""
    schedule = NoiseSchedule.from_config(config)

    def denoise(x, t):
        alpha, sigma = schedule.alpha_sigma(t)
        eps = (x - alpha * x0) / sigma
        return training_target(x0, eps, alpha, sigma, config.target)

    return denoise


@functools.partial(jax.jit, static_argnames="config")
def _sample_with_oracle(x0, rng, config):
    noise = jax.random.normal(jax.random.fold_in(rng, 1), x0.shape)
    return ddim_sample(_oracle(x0, config), noise, rng, config)


@pytest.mark.parametrize(
    ("target", "eta", "schedule"),
    [
        ("v", 0.0, "cosine"),
        ("v", 1.0, "cosine"),
        ("eps", 0.5, "ddpm_linear"),
        ("x0", 0.0, "linear_logsnr"),
    ],
)
def test_oracle_denoiser_reproduces_x0(target, eta, schedule):
    config = DiffusionConfig(target=target, sampler_eta=eta, schedule=schedule, sampler_steps=8)
    x0 = jax.random.uniform(jax.random.key(0), (2, 1, 8, 8, 3), minval=-1, maxval=1)
    np.testing.assert_allclose(_sample_with_oracle(x0, jax.random.key(1), config), x0, atol=1e-4)


def _ddim_law_of_gaussian_data(mu, s, config):
    """(mean, std) of DDIM's output for x0 ~ N(mu, s^2) with the exact denoiser, by recursion.

    With z = x - alpha mu, the exact x0 estimate is mu + alpha s^2 z / V (V = alpha^2 s^2 +
    sigma^2), so one step maps z -> (alpha' alpha s^2 + d sigma) / V z + f xi, with f the fresh
    noise scale and d = sqrt(sigma'^2 - f^2): the law stays Gaussian and is tracked exactly.
    """
    times = np.linspace(1.0, 0.0, config.sampler_steps + 1)
    alpha, sigma = map(np.asarray, NoiseSchedule.from_config(config).alpha_sigma(times))
    alpha, sigma = alpha.astype(np.float64), sigma.astype(np.float64)
    mean, var = -alpha[0] * mu, 1.0  # z of the initial N(0, 1) draw at t = 1
    for i in range(config.sampler_steps):
        a, sg, a_n, sg_n = alpha[i], sigma[i], alpha[i + 1], sigma[i + 1]
        fresh = config.sampler_eta * sg_n / sg * np.sqrt(max(1 - (a / a_n) ** 2, 0.0))
        direction = np.sqrt(max(sg_n**2 - fresh**2, 0.0))
        factor = (a_n * a * s**2 + direction * sg) / (a**2 * s**2 + sg**2)
        mean, var = factor * mean, factor**2 * var + fresh**2
    return mu + mean, np.sqrt(var)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_gaussian_data_sampled_with_the_exact_denoiser(eta):
    """x0 ~ N(mu, s^2) has an exact denoiser, and DDIM's output law is then computable: the
    samples must follow it (checks the update with its eta noise), and it tends to the data law
    as steps grow (at 50 steps the std is 3% (eta 0) and 6% (eta 1) low: few steps shrink it)."""
    mu, s = 0.3, 0.5
    config = DiffusionConfig(sampler_eta=eta, sampler_steps=50, clip_x0=False)
    schedule = NoiseSchedule.from_config(config)

    def denoise(x, t):
        alpha, sigma = schedule.alpha_sigma(t)
        x0 = mu + alpha * s**2 * (x - alpha * mu) / (alpha**2 * s**2 + sigma**2)
        eps = (x - alpha * x0) / sigma
        return alpha * eps - sigma * x0  # v

    @jax.jit
    def sample(rng):
        return ddim_sample(denoise, jax.random.normal(rng, (40_000,)), jax.random.key(9), config)

    samples = np.asarray(sample(jax.random.key(2)))
    mean, std = _ddim_law_of_gaussian_data(mu, s, config)
    assert abs(samples.mean() - mean) < 0.008 and abs(samples.std() - std) < 0.006
    assert abs(mean - mu) < 0.01 and abs(std - s) < 0.04
    mean, std = _ddim_law_of_gaussian_data(mu, s, config.replace(sampler_steps=2000))
    assert abs(mean - mu) < 1e-3 and abs(std - s) < 2e-3


@pytest.mark.parametrize(
    ("chunked", "mixer"), [(False, "lssvwm"), (True, "lssvwm"), (False, "causal_full")]
)
def test_world_model_sampler_commits_what_prefill_would_see(chunked, mixer):
    """(causal_full: its growing cache is reserved by `generate` before the jitted units.)"""
    model = tiny_model(chunked, mixer)
    unit = model.unit
    context, generated = 2, 2 * unit
    config = DiffusionConfig(sampler_steps=3)
    video, poses = frames_and_poses(2, context + generated, seed=1)
    sampler = Sampler(model, config)
    rng = jax.random.key(0)
    context_cache = sampler.prefill(video[:, :context], poses[:, :context], rng)
    frames, cache, seconds = sampler.generate(context_cache, poses[:, context:], rng, timings=True)
    assert frames.shape == (2, generated, 8, 8, 3) and len(seconds) == generated // unit
    assert np.isfinite(np.asarray(frames)).all() and np.abs(np.asarray(frames)).max() <= 1.0
    assert np.asarray(frames).std() > 0.01  # not a constant
    # The final cache equals prefilling the context followed by the generated (clean) frames.
    reference = sampler.prefill(
        jnp.concatenate([video[:, :context], frames], axis=1), poses, jax.random.key(5)
    )
    for got, want in zip(jax.tree.leaves(cache), jax.tree.leaves(reference), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    moved = [
        np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).max()
        for a, b in zip(jax.tree.leaves(cache), jax.tree.leaves(context_cache), strict=True)
        if a.size and a.shape == b.shape  # (a growing cache changes shape)
    ]
    assert max(moved) > 1e-2  # generating advanced the cache (the comparison is not vacuous)
    # Same rng: same frames (the compiled unit function is deterministic and reused).
    cache2 = sampler.prefill(video[:, :context], poses[:, :context], rng)
    frames2, _ = sampler.generate(cache2, poses[:, context:], rng)
    np.testing.assert_array_equal(frames2, frames)


def test_sampler_with_context_noise_and_bad_inputs():
    model = tiny_model()
    config = DiffusionConfig(sampler_steps=2, context_noise=0.1, sampler_eta=1.0)
    video, poses = frames_and_poses(1, 3, seed=2)
    sampler = Sampler(model, config)
    cache = sampler.prefill(video[:, :2], poses[:, :2], jax.random.key(0))
    frames, cache = sampler.generate(cache, poses[:, 2:], jax.random.key(1))
    assert frames.shape == (1, 1, 8, 8, 3) and np.isfinite(np.asarray(frames)).all()
    with pytest.raises(ValueError, match="whole number of units"):
        Sampler(tiny_model(chunked=True), config).prefill(video, poses, jax.random.key(0))
    with pytest.raises(ValueError, match="positive whole number of units"):
        sampler.generate(cache, poses[:, :0], jax.random.key(0))
    with pytest.raises(TypeError, match="DiffusionConfig"):
        Sampler(model, {"sampler_steps": 2})


def test_predict_and_commit_units_split_sample_unit():
    """`predict_unit` draws `sample_unit`'s frames without touching the cache; `commit_unit` of
    those frames is `sample_unit`'s cache; at noise level 1 the frames' content is forgotten."""
    model = tiny_model()
    config = DiffusionConfig(sampler_steps=2)
    video, poses = frames_and_poses(2, 3, seed=4)
    sampler = Sampler(model, config)
    rng = jax.random.key(3)
    cache = sampler.prefill(video[:, :2], poses[:, :2], rng)
    frames, sampled_cache = sampler.sample_unit(cache, poses[:, 2:], rng, 7)
    predicted = sampler.predict_unit(cache, poses[:, 2:], rng, 7)
    np.testing.assert_allclose(predicted, frames, atol=1e-6)
    committed = sampler.commit_unit(cache, predicted, poses[:, 2:], rng, 7)
    for got, want in zip(jax.tree.leaves(committed), jax.tree.leaves(sampled_cache), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)

    def leaves_gap(a, b):
        pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
        return max(float(np.abs(x - y).max()) for x, y in pairs)

    clean = [
        sampler.commit_unit(cache, v, poses[:, 2:], rng, 7) for v in (video[:, 2:], -video[:, 2:])
    ]
    noise = [
        sampler.commit_unit(cache, v, poses[:, 2:], rng, 7, noise_level=1.0)
        for v in (video[:, 2:], -video[:, 2:])
    ]
    assert leaves_gap(*noise) < 1e-2 * leaves_gap(*clean)
