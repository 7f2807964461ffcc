"""Noise schedules (VP identity, monotone, endpoints, closed forms) and target conversions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lssvwm.diffusion import SCHEDULES, TARGETS, NoiseSchedule, training_target, x0_and_eps

GRID = jnp.linspace(0.0, 1.0, 1001)


@pytest.mark.parametrize("kind", SCHEDULES)
def test_variance_preserving_monotone_with_exact_clean_endpoint(kind):
    schedule = NoiseSchedule(kind, -15.0, 15.0)
    alpha, sigma = map(np.asarray, schedule.alpha_sigma(GRID))
    np.testing.assert_allclose(alpha**2 + sigma**2, 1.0, atol=1e-6)
    assert alpha[0] == 1.0 and sigma[0] == 0.0  # t = 0 is the data itself
    assert np.all(np.diff(alpha) <= 0) and np.all(np.diff(sigma) >= 0)
    logsnr = np.asarray(schedule.log_snr(GRID))
    assert np.all(np.diff(logsnr) <= 0)
    assert np.all(np.diff(logsnr[200:800]) < 0)  # strictly inside the clipped range
    assert logsnr[0] == pytest.approx(15.0) and logsnr.min() >= -15.0 - 1e-5
    assert alpha[-1] < 0.01 and sigma[-1] > 0.9999  # t = 1 is (almost) pure noise


@pytest.mark.parametrize("kind", ["cosine", "linear_logsnr"])
def test_endpoints_are_the_logsnr_bounds(kind):
    schedule = NoiseSchedule(kind, -12.0, 9.0)
    np.testing.assert_allclose(schedule.log_snr(jnp.array([0.0, 1.0])), [9.0, -12.0], atol=1e-4)


def test_closed_forms():
    t = np.linspace(0.01, 0.99, 99)
    # Cosine with wide bounds is alpha = cos(pi t / 2).
    alpha, _ = NoiseSchedule("cosine", -30.0, 30.0).alpha_sigma(jnp.asarray(t))
    np.testing.assert_allclose(alpha, np.cos(np.pi * t / 2), atol=2e-6)
    # DDPM linear betas: alpha^2 = exp(-(0.1 t + 9.95 t^2)).
    alpha, _ = NoiseSchedule("ddpm_linear", -30.0, 30.0).alpha_sigma(jnp.asarray(t))
    np.testing.assert_allclose(alpha**2, np.exp(-(0.1 * t + 9.95 * t**2)), rtol=1e-4)
    # Linear in log-SNR.
    np.testing.assert_allclose(
        NoiseSchedule("linear_logsnr", -10.0, 10.0).log_snr(jnp.asarray(t)), 10 - 20 * t, atol=1e-5
    )


def test_shift_adds_to_logsnr():
    base, shifted = NoiseSchedule("cosine"), NoiseSchedule("cosine", shift=-2.0)
    t = jnp.linspace(0.1, 0.9, 9)
    np.testing.assert_allclose(shifted.log_snr(t), base.log_snr(t) - 2.0, atol=1e-5)
    assert np.all(shifted.alpha_sigma(t)[0] < base.alpha_sigma(t)[0])  # noisier


@pytest.mark.parametrize("target", TARGETS)
def test_target_conversions_round_trip(target):
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    x0 = jax.random.uniform(k1, (3, 4, 2, 2, 3), minval=-1, maxval=1)
    eps = jax.random.normal(k2, x0.shape)
    t = jax.random.uniform(k3, (3, 4, 1, 1, 1), minval=0.02, maxval=0.98)
    alpha, sigma = NoiseSchedule().alpha_sigma(t)
    x_t = alpha * x0 + sigma * eps
    output = training_target(x0, eps, alpha, sigma, target)
    expected = {"v": alpha * eps - sigma * x0, "eps": eps, "x0": x0}[target]
    np.testing.assert_allclose(output, expected, atol=1e-6)
    x0_hat, eps_hat = x0_and_eps(output, x_t, alpha, sigma, target)
    np.testing.assert_allclose(x0_hat, x0, atol=2e-4)
    np.testing.assert_allclose(eps_hat, eps, atol=2e-4)


def test_bad_names_are_clear():
    with pytest.raises(ValueError, match="schedule must be one of"):
        NoiseSchedule("cosin")
    with pytest.raises(ValueError, match="logsnr_min"):
        NoiseSchedule("cosine", 5.0, 1.0)
    with pytest.raises(ValueError, match="target must be one of"):
        training_target(0.0, 0.0, 1.0, 0.0, "velocity")
