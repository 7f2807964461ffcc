"""PSNR and SSIM against hand-computed values and scikit-image's reference SSIM."""

import numpy as np
import pytest

from lssvwm.common.image_metrics import frame_metrics, gaussian_window, psnr, ssim


def checkerboard(shape) -> np.ndarray:
    h, w = shape[-3:-1]
    board = (np.indices((h, w)).sum(0) % 2) * 2.0 - 1.0  # +1 / -1
    return np.broadcast_to(board[..., None], shape)


def test_psnr_of_known_noise():
    target = np.full((2, 16, 16, 3), 0.5, np.float32)
    prediction = target + 0.1 * checkerboard(target.shape)  # MSE exactly 0.01
    np.testing.assert_allclose(psnr(prediction, target), [20.0, 20.0], atol=1e-4)
    # uint8: +-16 levels around 128 -> 20 log10(255 / 16) dB.
    target8 = np.full((16, 16, 3), 128, np.uint8)
    prediction8 = (128 + 16 * checkerboard(target8.shape)).astype(np.uint8)
    scores = frame_metrics(prediction8, target8)
    np.testing.assert_allclose(scores["psnr"], 20 * np.log10(255 / 16), atol=1e-4)


def test_psnr_of_identical_frames_is_capped():
    frame = np.random.default_rng(0).uniform(size=(8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(psnr(frame, frame), 100.0)


def test_ssim_of_identical_images_is_one():
    frames = np.random.default_rng(1).uniform(size=(3, 20, 24, 3)).astype(np.float32)
    np.testing.assert_allclose(ssim(frames, frames), 1.0, atol=1e-5)


def test_ssim_of_constant_images_is_the_luminance_term():
    a, b, c1 = 0.2, 0.6, 0.01**2
    x = np.full((16, 16, 1), a, np.float32)
    y = np.full((16, 16, 1), b, np.float32)
    # No variance: the contrast-structure term is C2 / C2 = 1.
    np.testing.assert_allclose(ssim(x, y), (2 * a * b + c1) / (a * a + b * b + c1), rtol=1e-5)


def test_gaussian_window():
    window = np.asarray(gaussian_window())
    assert window.shape == (11,)
    np.testing.assert_allclose(window.sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(window[6] / window[5], np.exp(-1 / (2 * 1.5**2)), rtol=1e-5)


def test_ssim_of_shifted_images():
    rng = np.random.default_rng(2)
    noise = rng.uniform(size=(32, 32, 3)).astype(np.float32)
    shifted = np.roll(noise, 1, axis=1)
    assert float(ssim(noise, shifted)) < 0.1  # white noise decorrelates after one pixel
    ramp = np.linspace(0, 1, 32, dtype=np.float32)
    smooth = np.broadcast_to((ramp[None, :, None] + ramp[:, None, None]) / 2, (32, 32, 3))
    shifted_smooth = np.roll(smooth, 1, axis=1)
    value = float(ssim(smooth, shifted_smooth))
    assert 0.9 < value < 1.0  # a smooth image barely changes


@pytest.mark.parametrize("shape", [(16, 16, 3), (24, 32, 3), (11, 13, 1)])
def test_ssim_matches_scikit_image(shape):
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(3)
    x = rng.uniform(size=shape)
    # Pairs from unrelated to nearly equal, and a shifted copy.
    pairs = [
        rng.uniform(size=shape),
        np.clip(x + 0.1 * rng.standard_normal(shape), 0, 1),
        np.clip(x + 0.01 * rng.standard_normal(shape), 0, 1),
        np.roll(x, 2, axis=0),
    ]
    for y in pairs:
        reference = metrics.structural_similarity(
            x,
            y,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
            channel_axis=-1,
        )
        ours = float(ssim(x.astype(np.float32), y.astype(np.float32)))
        np.testing.assert_allclose(ours, reference, atol=2e-5)


def test_ssim_per_frame_batches():
    rng = np.random.default_rng(4)
    x = rng.uniform(size=(2, 3, 16, 16, 3)).astype(np.float32)
    y = rng.uniform(size=(2, 3, 16, 16, 3)).astype(np.float32)
    batched = np.asarray(ssim(x, y))
    assert batched.shape == (2, 3)
    np.testing.assert_allclose(batched[1, 2], ssim(x[1, 2], y[1, 2]), rtol=1e-6)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="smaller than the 11x11 window"):
        ssim(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)))
