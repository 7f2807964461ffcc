"""experiments/memory/steps_curve.py: the gain per checkpoint and its extrapolation."""

import math

import pytest

from experiments.memory import run, steps_curve
from tests.experiments.test_memory_run import _result


def test_the_fit_recovers_a_log_linear_gain_and_solves_for_the_target():
    steps = [500, 1000, 2000, 4000]
    gains = [0.1 + 0.6 * math.log10(s / 500) for s in steps]
    intercept, slope = steps_curve.fit_log_steps(steps, gains)
    assert slope == pytest.approx(0.6)
    needed = steps_curve.steps_for(1.5, intercept, slope)
    assert 0.1 + 0.6 * math.log10(needed / 500) == pytest.approx(1.5)


def test_no_growth_has_no_finite_answer():
    intercept, slope = steps_curve.fit_log_steps([1000, 2000, 3000], [0.1, 0.1, 0.05])
    assert slope < 0 and steps_curve.steps_for(1.5, intercept, slope) is None
    with pytest.raises(ValueError, match="two different step counts"):
        steps_curve.fit_log_steps([1000, 1000], [0.1, 0.2])


def test_the_curve_pairs_each_step_with_its_emptied_self_beyond_w():
    counts = [4, 4, 4, 4]
    emptied = _result([10.0] * 4, [40.0] * 4, counts)  # 10 dB per far frame
    results = {
        1000: (_result([10.5] * 4, [42.0] * 4, counts), emptied),  # +0.5 dB
        2000: (_result([11.0] * 4, [44.0] * 4, counts), emptied),  # +1.0 dB
    }
    record = steps_curve.curve(results)
    assert [p["step"] for p in record["points"]] == [1000, 2000]
    assert [p["gain_db"] for p in record["points"]] == pytest.approx([0.5, 1.0])
    assert record["fit"]["b_db_per_decade"] == pytest.approx(0.5 / math.log10(2))
    assert record["fit"]["steps_to_target"] == round(1000 * 2**2)  # +0.5 dB per doubling


def test_each_checkpoint_is_probed_as_the_table_probes_it_and_against_its_own_control(tmp_path):
    kept, emptied = steps_curve.blind_retrieval_pair("lssvwm")
    assert (kept.name, emptied.name) == ("lssvwm", "lssvwm_ssm_zeroed")
    assert set(emptied.flags) - set(kept.flags) == {"--reset=at:0:ssm"}
    # The full-context transformer's control is its attention cache cleared.
    _, cleared = steps_curve.blind_retrieval_pair("causal_full")
    assert cleared.name == "causal_full_cache_cleared" and "--reset=at:0" in cleared.flags
    command = run.evaluate_command(kept, tmp_path, 32, tmp_path / "out.json")
    assert command[1:3] == ["-m", "lssvwm.evaluate"] and "--history=blind" in command
    with pytest.raises(ValueError, match="'causal_window' has no memory to empty"):
        steps_curve.blind_retrieval_pair("causal_window")
