"""Bootstrap intervals over episodes and distance bins."""

import numpy as np
import pytest

from lssvwm.evaluation import statistics


def test_constant_values_have_a_point_interval():
    mean, low, high = statistics.bootstrap_mean(np.full(32, 3.5))
    assert mean == low == high == 3.5


def test_interval_covers_the_true_mean_about_as_often_as_stated():
    rng = np.random.default_rng(0)
    trials, covered, widths = 200, 0, []
    for trial in range(trials):
        values = rng.normal(10.0, 2.0, size=32)
        mean, low, high = statistics.bootstrap_mean(values, resamples=500, seed=trial)
        assert low <= mean <= high
        covered += low <= 10.0 <= high
        widths.append(high - low)
    # Percentile bootstrap of a mean of 32 normals: close to the nominal 95% (a little under).
    assert 0.88 <= covered / trials <= 0.99
    # Width close to the normal-theory 2 * 1.96 * sigma / sqrt(n).
    assert np.mean(widths) == pytest.approx(2 * 1.96 * 2.0 / np.sqrt(32), rel=0.15)


def test_interval_narrows_with_more_episodes():
    rng = np.random.default_rng(1)
    few = statistics.bootstrap_mean(rng.normal(size=16))
    many = statistics.bootstrap_mean(rng.normal(size=256))
    assert (many[2] - many[1]) < 0.5 * (few[2] - few[1])


def test_ratio_pools_frames_and_marks_empty_bins():
    sums = np.array([[10.0, 0.0], [30.0, 0.0]])
    counts = np.array([[1, 0], [3, 0]])
    point, low, high = statistics.bootstrap_ratio(sums, counts)
    assert point[0] == pytest.approx(40.0 / 4)  # pooled: (10 + 30) / (1 + 3)
    assert low[0] <= point[0] <= high[0]
    assert np.isnan(point[1]) and np.isnan(low[1]) and np.isnan(high[1])


def test_bootstrap_is_seeded():
    values = np.random.default_rng(2).normal(size=40)
    assert statistics.bootstrap_mean(values, seed=3) == statistics.bootstrap_mean(values, seed=3)


def test_distance_bins():
    bins = statistics.distance_bins([4, 32])
    assert [b.label for b in bins] == ["1-4", "5-32", ">32", "never seen"]
    distance = np.array([1, 4, 5, 32, 33, 1000, -1])
    members = np.stack([b.contains(distance) for b in bins])
    np.testing.assert_array_equal(members.sum(0), 1)  # every frame in exactly one bin
    np.testing.assert_array_equal(np.argmax(members, 0), [0, 0, 1, 1, 2, 2, 3])
    with pytest.raises(ValueError, match="increasing"):
        statistics.distance_bins([8, 4])


def test_default_edges_follow_the_architecture():
    # Attention window k, the training length, then doublings past it.
    assert statistics.default_distance_edges(4, 32, 800) == [4, 32, 64, 128, 256, 512]
    assert statistics.default_distance_edges(None, 32, 40) == [32]
