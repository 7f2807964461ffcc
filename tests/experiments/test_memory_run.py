"""experiments/memory/run.py: the probe plan, resumption and the table from result files."""

import json

import numpy as np
import pytest

from experiments.memory import run


def test_every_memory_has_its_same_weights_control_and_lssvwm_goes_beyond_training():
    names = {model: {p.name for p in run.probes_for(model)} for model in run.ORDER}
    assert "causal_full_cache_cleared" in names["causal_full"]
    assert "spatial_memory_store_emptied" in names["spatial_memory"]
    for model in run.SSM_MODELS:
        assert f"{model}_ssm_zeroed" in names[model]
    assert names["causal_window"] == {"causal_window"}
    beyond = [p for p in run.probes_for("lssvwm") if p.task == "beyond_training"]
    assert {p.name for p in beyond} == {"lssvwm", "lssvwm_reset_every_64"}
    paths = [p.path for model in run.ORDER for p in run.probes_for(model)]
    assert len(paths) == len(set(paths))  # no two probes write the same file


def test_dry_run_lists_the_commands_and_skips_what_exists(tmp_path, capsys):
    (tmp_path / "causal_window").mkdir()
    (tmp_path / "causal_window" / "eval_final.json").write_text("{}")
    done = tmp_path / "probes" / "retrieval_blind" / "causal_window.json"
    done.parent.mkdir(parents=True)
    done.write_text("{}")
    run.main(["--runs", str(tmp_path), "--models", "causal_full,causal_window", "--dry-run"])
    out = capsys.readouterr().out
    assert "lssvwm.train --config=configs/maze3d_memory.py:mixer=causal_full" in out
    assert "mixer=causal_window" not in out  # trained
    assert "retrieval_blind/causal_window.json" not in out  # probed
    assert "retrieval_truth/causal_window.json" in out
    assert "--reset=at:0" in out and "causal_full_cache_cleared.json" in out
    assert not (tmp_path / "causal_full").exists()  # a dry run runs nothing


def _result(episode_psnr, far_sums, far_counts):
    episodes = len(episode_psnr)
    near = dict(
        label="5-16",
        low=5,
        high=16,
        never_seen=False,
        num_frames=episodes,
        psnr=10.0,
        psnr_ci=[9.0, 11.0],
        episode_num_frames=[1] * episodes,
        episode_psnr_sum=[10.0] * episodes,
    )
    far = dict(
        label="17-64",
        low=17,
        high=64,
        never_seen=False,
        num_frames=int(sum(far_counts)),
        psnr=float(np.sum(far_sums) / np.sum(far_counts)),
        psnr_ci=[0.0, 20.0],
        episode_num_frames=far_counts,
        episode_psnr_sum=far_sums,
    )
    return dict(
        task="retrieval",
        psnr=float(np.mean(episode_psnr)),
        psnr_ci=[0.0, 1.0],
        ssim=0.5,
        checkpoint_step=3000,
        num_episodes=episodes,
        episode_ids=list(range(episodes)),
        episode_psnr=episode_psnr,
        psnr_by_distance=[near, far],
        wall_seconds=30.0,
    )


def test_the_table_pairs_the_positive_control_by_episode(tmp_path):
    blind = tmp_path / "runs" / "probes" / "retrieval_blind"
    blind.mkdir(parents=True)
    full = _result([14.0, 15.0, 16.0], far_sums=[30.0, 45.0, 0.0], far_counts=[2, 3, 0])
    window = _result([12.0, 13.0, 14.0], far_sums=[20.0, 30.0, 0.0], far_counts=[2, 3, 0])
    (blind / "causal_full.json").write_text(json.dumps(full))
    (blind / "causal_window.json").write_text(json.dumps(window))
    out = tmp_path / "out"
    run.main(
        [
            "--runs",
            str(tmp_path / "runs"),
            "--models",
            "causal_full,causal_window",
            "--stages",
            "table",
            "--out",
            str(out),
        ]
    )
    record = json.loads((out / "results.json").read_text())
    entries = {(e["a"], e["b"], e["probe"], e["task"], e["bin"]): e for e in record["paired"]}
    whole = entries["causal_full", "causal_window", "blind", "retrieval", "all"]
    assert whole["mean_db"] == pytest.approx(2.0) and whole["episodes"] == 3
    far = entries["causal_full", "causal_window", "blind", "retrieval", "beyond_W"]
    assert far["mean_db"] == pytest.approx((75.0 - 50.0) / 5)  # pooled over the bin's frames
    assert far["episodes"] == 2  # the episode without such frames does not count
    assert set(far) == {"a", "b", "probe", "task", "bin", "mean_db", "ci95", "episodes"}
    assert "retrieval_truth/causal_full.json" in record["missing"]
    table = (out / "results.md").read_text()
    assert "| causal_full | causal_window | blind | retrieval | beyond_W | +5.00 |" in table
    assert (out / "psnr_by_distance.png").stat().st_size > 0


def test_memory_world_members_differ_where_the_family_says():
    from configs import maze3d_memory

    def blocks(mixer):
        return tuple(maze3d_memory.get_config(f"mixer={mixer}").model.block_sizes)

    assert blocks("lssvwm") == ("full", (1, 1))  # a 2x2 block is the whole 2x2 token grid
    assert blocks("lssvwm_1x1") == ((1, 1),)  # per-position scans in every layer


def test_training_time_counts_resumed_steps_once(tmp_path):
    rows = [  # 100 steps at 10/s, killed; resumed from step 50 and relogged at 5/s
        {"step": 50, "steps_per_sec": 10.0},
        {"step": 100, "steps_per_sec": 10.0},
        {"step": 100, "steps_per_sec": 5.0},
        {"step": 150, "steps_per_sec": 5.0},
        {"step": 150, "loss": 0.1},  # an evaluation row: no rate
    ]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert run.training_seconds(path) == pytest.approx(5.0 + 10.0 + 10.0)
    assert run.training_seconds(tmp_path / "missing.jsonl") is None
