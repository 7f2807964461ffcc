"""experiments/bench_cost: the fitted growth exponents, the summary and the record's table."""

import pytest

from experiments.bench_cost import bench_cost


def _train(model, window, seconds, temp):
    return dict(
        kind="train",
        model=model,
        window=window,
        fits=True,
        step_seconds=seconds,
        temp_bytes=temp,
        flops=1e9,
        fraction_of_matmul_peak=0.1,
    )


def _rollout(model, frame, seconds, cache):
    split = dict(total=cache, ssm=cache, kv=0, store=0)
    return dict(kind="rollout", model=model, frame=frame, seconds_per_frame=seconds, cache=split)


def test_growth_exponent_recovers_a_power_law():
    points = [(w, 3.0 * w**1.5) for w in (16, 32, 64, 128)]
    assert bench_cost.growth_exponent(points) == pytest.approx(1.5)
    assert bench_cost.growth_exponent(points[:1]) is None


def test_summary_ratios_and_table_skip_what_did_not_fit():
    rows = [
        _train("lssvwm", 16, 1.0, 100),
        _train("lssvwm", 64, 4.0, 400),
        _train("causal_full", 16, 1.0, 100),
        _train("causal_full", 64, 16.0, 1600),
        dict(kind="train", model="causal_full", window=256, fits=False, note="too big"),
        _rollout("lssvwm", 100, 0.1, 10),
        _rollout("causal_full", 100, 0.3, 50),
        dict(kind="rollout", model="causal_full", frame=1000, error="OOM"),
    ]
    summary = bench_cost.summarize(rows, ["lssvwm", "causal_full"])
    assert summary["lssvwm"]["train_time_exponent"] == pytest.approx(1.0)
    assert summary["causal_full"]["train_time_exponent"] == pytest.approx(2.0)
    assert summary["causal_full"]["per_frame_vs_lssvwm"] == {100: 3.0}
    record = dict(
        command="c",
        commit="0" * 40,
        device="cpu",
        jax="x",
        matmul_peak_tflops={},
        wall_seconds=60,
        models=["lssvwm", "causal_full"],
        rows=rows,
        summary=summary,
    )
    table = bench_cost.markdown(record)
    assert "| causal_full | 256 | - | - | - | - | too big |" in table
    assert "| causal_full | 1000 | - | - | OOM |" in table
    assert "| causal_full | 2.00 | 2.00 |" in table  # time and temp-bytes exponents


def test_frames_too_early_for_the_window_are_refused():
    with pytest.raises(SystemExit):
        bench_cost.parse_args(["--frames", "5", "--window", "20"])


class _FakeCase:
    """Stands for a compiled window or a prefilled stream: records when it was run."""

    def __init__(self, name, seconds, calls):
        self.row, self.name, self._seconds, self._calls = dict(flops=None), name, seconds, calls
        self.loss = 0.5

    def step(self):
        self._calls.append(self.name)
        return self._seconds.pop(0)

    unit = step


def test_windows_and_frames_are_timed_round_robin_in_bursts_after_a_warm_up():
    calls = []
    t16 = _FakeCase("T16", [9.0, 1.0, 3.0, 9.0, 2.0, 2.0], calls)
    t32 = _FakeCase("T32", [9.0, 4.0, 6.0, 9.0, 5.0, 5.0], calls)
    bench_cost.time_train([t16, t32], rounds=2, peak={"float32": 1.0})
    # Each round: every window in turn, one untimed step then two timed ones.
    assert calls == ["T16"] * 3 + ["T32"] * 3 + ["T16"] * 3 + ["T32"] * 3
    assert t16.row["step_seconds_all"] == [1.0, 3.0, 2.0, 2.0]  # the untimed 9 s left out
    assert [t16.row["step_seconds"], t32.row["step_seconds"]] == [2.0, 5.0]
    calls.clear()
    streams = [_FakeCase(f"N{n}", [0.5, 0.1, 0.3, 0.2, 0.2] * 4, calls) for n in (100, 4000)]
    bench_cost.time_rollouts(streams, units=20)
    assert len(calls) == 40 and calls[:10] == ["N100"] * 5 + ["N4000"] * 5  # 20 units each
    assert [s.row["seconds_per_frame"] for s in streams] == [0.2, 0.2]
    for units in (1, 3, 4, 5):  # never more units than the stream has actions for
        calls.clear()
        bench_cost.time_rollouts([_FakeCase("N", [0.1] * 20, calls)], units=units)
        assert 1 <= len(calls) <= units


def test_a_worker_s_rows_and_log_lines_are_read_as_they_come_and_its_failure_recorded(capsys):
    import argparse
    import sys

    args = argparse.Namespace(worker_timeout=None)
    script = (
        'import sys; print(\'ROW {"kind": "train", "model": "m"}\'); print(\'compiled\');'
        "sys.stderr.write('warning\\nMemoryError: boom\\n'); sys.exit(3)"
    )
    rows = bench_cost.run_worker(args, [], "m", command=[sys.executable, "-c", script])
    assert rows[0] == {"kind": "train", "model": "m"}
    assert rows[1] == dict(kind="worker_failed", model="m", code=3, detail=["MemoryError: boom"])
    assert "  m| compiled" in capsys.readouterr().out
    args.worker_timeout = 0.5
    sleeper = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(30)"]
    rows = bench_cost.run_worker(args, [], "m", command=sleeper)
    assert rows == [dict(kind="worker_failed", model="m", code="timeout", detail=["after 0.5 s"])]


def test_compile_only_needs_a_cache_to_compile_into():
    with pytest.raises(SystemExit):
        bench_cost.parse_args(["--compile-only"])
    args = bench_cost.parse_args(["--compile-only", "--compilation-cache", "/tmp/xla"])
    assert args.compile_only and args.compilation_cache == "/tmp/xla"


def test_rewrite_remakes_the_table_and_plots_from_a_record(tmp_path):
    import json

    rows = [_train("lssvwm", 16, 1.0, 100), _train("lssvwm", 32, 2.0, 200)]
    rows += [_rollout("lssvwm", 100, 0.1, 10), _rollout("causal_full", 100, 0.3, 30)]
    record = dict(
        command="python -m experiments.bench_cost.bench_cost",
        commit="abc",
        device="NVIDIA H100",
        jax="0.11.2",
        matmul_peak_tflops={},
        models=["lssvwm", "causal_full"],
        wall_seconds=60.0,
        rows=rows,
        note="Ran on a lent GPU.",
    )
    record["summary"] = bench_cost.summarize(rows, ["lssvwm", "causal_full"])
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps(record))
    bench_cost.main(["--rewrite", str(path)])
    table = (tmp_path / "gpu.md").read_text()
    assert "Ran on a lent GPU." in table and "| lssvwm | 16 | 1.0000 |" in table
    assert "| causal_full | 100 | 0.3000 | 3.00 |" in table  # the ratio, through JSON's str keys
    assert (tmp_path / "gpu_train.png").stat().st_size > 0
    assert (tmp_path / "gpu_rollout.png").stat().st_size > 0


@pytest.mark.parametrize(
    "config, windows",
    [("configs/paper_200m.py", (100, 400)), ("configs/maze3d_lssvwm.py", (16, 512))],
)
def test_the_documented_train_windows_make_valid_runs(config, windows):
    """Every window the README and gpu_session.sh time passes the run spec's checks (paper_200m's
    curriculum stages once refused a 100-frame window, found only on a lent GPU)."""
    args = bench_cost.parse_args(["--config", config])
    for model in ("lssvwm", "causal_full"):
        for window in windows:
            spec = bench_cost.train_spec(args, model, window)
            assert spec.training.window_length == window == spec.model.max_frames


def test_the_rollout_compiled_ahead_gets_a_whole_unit_of_actions(monkeypatch, tmp_path):
    """A chunked model generates whole chunks: the unit compiled ahead of the timing takes
    `unit` frames of actions (it was given one, found only on a lent GPU)."""
    import types

    import jax.numpy as jnp

    from experiments.bench_family import bench_family
    from lssvwm.config_loading import load_config
    from lssvwm.models import WorldModelConfig

    units_given = []

    class FakeSampler:
        def __init__(self, network, diffusion, window):
            self.unit = network.unit

        def prefill(self, frames, actions, rng):
            return jnp.zeros(())

        def sample_unit(self, cache, actions_U, rng, unit_index=0):
            units_given.append(actions_U.shape[1])
            return None, cache

    monkeypatch.setattr(bench_family, "WindowSampler", FakeSampler)
    model_config = WorldModelConfig.from_mapping(
        load_config("configs/paper_200m.py").model.to_dict()
    )
    assert model_config.attention_chunk == 5
    network = types.SimpleNamespace(config=model_config, unit=model_config.attention_chunk)
    argv = ["--config", "configs/paper_200m.py", "--compile-only"]
    args = bench_cost.parse_args([*argv, "--compilation-cache", str(tmp_path)])
    assert bench_cost.prepare_rollout(args, "lssvwm", 100, network, diffusion=None) is None
    assert units_given == [5]
