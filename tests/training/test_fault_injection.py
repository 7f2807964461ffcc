"""SIGKILL at random moments, some mid-save, then resume: the final parameters are bitwise those
of an uninterrupted run (experiments/faults/kill_loop.py at the tiny scale, the real CLI)."""

import numpy as np
import pytest

from experiments.faults import kill_loop


# ~1.5 min alone, 3.5 min on a loaded 2-core machine: over the default suite's budget, so .ci/run
# runs it on its own after the suite (as it runs the multi-host test).
@pytest.mark.slow
def test_sigkill_at_random_moments_and_mid_save_resumes_to_identical_parameters(tmp_path):
    result = kill_loop.kill_loop(
        "configs/quickstart.py:tiny",
        tmp_path,
        steps=24,
        checkpoint_every=3,
        kills=4,
        mid_save_kills=1,
        seed=0,
        extra={"sample.num_windows": 0, "data.data_dir": str(tmp_path / "data")},
    )
    assert result["kills_survived"] == 4
    assert result["mid_save_kills"] >= 1, result["kills"]
    for kill in result["kills"]:  # a kill loses at most the steps since the last save + 1
        assert 0 <= kill["steps_lost"] <= 3 + 1, kill
    assert result["bitwise_equal"], result["max_parameter_difference"]


def test_kill_record_helpers(tmp_path):
    assert kill_loop.resumed_step("I... train.py:1] resumed from /x/checkpoints at step 12\n") == 12
    assert kill_loop.resumed_step("no such line") is None
    (tmp_path / "metrics.jsonl").write_text(
        '{"step": 1, "loss": 0.5}\n{"step": 2, "eval/x": 1}\n{"st'
    )
    assert kill_loop.last_logged_step(tmp_path) == 1  # eval records and a cut line do not count
    a = {"w": np.zeros(3, np.float32)}
    assert kill_loop.max_difference(a, {"w": np.array([0, 2e-7, 0], np.float32)}) == pytest.approx(
        2e-7
    )
    assert kill_loop.max_difference(a, {"w": np.zeros(4, np.float32)}) == float("inf")
    kill = kill_loop.Kill("step", last_logged_step=7, saving=False, resumed_from=6)
    assert kill.steps_lost == 1
