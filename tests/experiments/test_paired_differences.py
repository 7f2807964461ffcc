"""experiments/state_carrying/paired_differences.py: the paired bootstrap of two runs."""

import numpy as np
import pytest

from experiments.state_carrying.paired_differences import paired_difference


def test_a_constant_per_episode_gap_has_a_point_interval():
    a = {"episode_ids": [0, 1, 2, 3], "episode_psnr": [10.0, 12.0, 9.0, 15.0]}
    b = {"episode_ids": [0, 1, 2, 3], "episode_psnr": [9.5, 11.5, 8.5, 14.5]}
    result = paired_difference(a, b)
    assert result["mean_db"] == pytest.approx(0.5)
    np.testing.assert_allclose(result["ci95_db"], [0.5, 0.5])  # the spread between episodes cancels
    assert result["episodes"] == 4


def test_runs_of_different_episodes_are_refused():
    a = {"episode_ids": [0, 1], "episode_psnr": [1.0, 2.0]}
    b = {"episode_ids": [0, 2], "episode_psnr": [1.0, 2.0]}
    with pytest.raises(ValueError, match="different episodes"):
        paired_difference(a, b)
