"""The trainer with a length curriculum and carried state, end to end (slow: minutes).

configs/ablation_curriculum.py:schedule=stages,tiny,carry,constant_tokens: 4 steps, stage 0 of
4-frame windows x 4 slots, stage 1 (from step 2) of 8-frame windows x 2 slots, state carried
across consecutive windows. Checks the compile count (one per stage), the carry and slot
positions in the checkpoints, and that a run resumed from the mid-curriculum checkpoint ends
bit for bit where the uninterrupted run did.
"""

import json
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from lssvwm.config_loading import load_config
from lssvwm.train import train_and_evaluate

pytestmark = pytest.mark.slow

SPEC = "configs/ablation_curriculum.py:schedule=stages,tiny,carry,constant_tokens"


def _restore(workdir, step):
    """(train state as saved, data position) of checkpoint `step`, read without a target."""
    directory = workdir / "checkpoints" / str(step)
    state = ocp.StandardCheckpointer().restore(directory / "state")
    return state, json.loads((directory / "data" / "metadata").read_text())


def test_curriculum_with_carried_state_compiles_per_stage_and_resumes_exactly(tmp_path):
    config = load_config(SPEC, {"data.data_dir": str(tmp_path / "data")})
    workdir = tmp_path / "run"
    results = train_and_evaluate(config, workdir)
    assert results["train_step_compilations_this_run"] == 2  # two stages
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in records if "loss" in r]
    assert [r["step"] for r in trained] == [1, 2, 3, 4]
    # Stage 0 (4 windows of 4 frames, 64-frame episodes): step 1 starts episodes, step 2
    # continues them; stage 1 restarts every slot at a fresh episode, step 4 continues.
    assert [r["reset_fraction"] for r in trained] == [1.0, 0.0, 1.0, 0.0]
    assert all(r["stream_breaks"] == 0 for r in trained)

    mid, data_mid = _restore(workdir, 2)
    assert data_mid == {"step": 2}
    # Saved after step 2, fitted to stage 1 (2 slots): a fresh carry, no position yet.
    np.testing.assert_array_equal(mid["carry"]["episode_id"], [-1, -1])
    final, _ = _restore(workdir, 4)
    np.testing.assert_array_equal(final["carry"]["next_frame"], [16, 16])  # 2 windows of 8
    assert (final["carry"]["episode_id"] >= 0).all()

    resumed = tmp_path / "resumed"
    shutil.copytree(workdir, resumed)
    shutil.rmtree(resumed / "checkpoints" / "4")
    (resumed / "eval_final.json").unlink()
    again = train_and_evaluate(config, resumed)
    assert again["train_step_compilations_this_run"] == 1  # stage 1 only
    final_again, _ = _restore(resumed, 4)
    for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(final_again), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
