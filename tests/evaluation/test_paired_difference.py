"""lssvwm.evaluation.compare.paired_difference: the paired bootstrap of two runs."""

import numpy as np
import pytest

from lssvwm.evaluation.compare import paired_difference


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


def _with_bin(ids, sums, counts):
    bin_ = {"label": "17-32", "episode_psnr_sum": sums, "episode_num_frames": counts}
    return {"episode_ids": ids, "episode_psnr": [0.0] * len(ids), "psnr_by_distance": [bin_]}


def test_a_bin_pools_its_frames_over_episodes():
    a = _with_bin([0, 1, 2], [30.0, 0.0, 22.0], [3, 0, 2])  # per-frame 10 dB, then 11 dB
    b = _with_bin([0, 1, 2], [27.0, 0.0, 20.0], [3, 0, 2])  # 9 dB, then 10 dB
    result = paired_difference(a, b, bin_label="17-32")
    assert result["mean_db"] == pytest.approx(1.0) and result["frames"] == 5
    assert result["episodes"] == 2
    np.testing.assert_allclose(result["ci95_db"], [1.0, 1.0])
    with pytest.raises(ValueError, match="no distance bin '1-4'"):
        paired_difference(a, b, bin_label="1-4")
    with pytest.raises(ValueError, match="frames differ"):
        paired_difference(a, _with_bin([0, 1, 2], [27.0, 0.0, 20.0], [2, 1, 2]), bin_label="17-32")
