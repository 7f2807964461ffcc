"""experiments/aot_memory: the paper-scale configs hold ~200M parameters each, and a train step
compiles ahead of time for abstract inputs with a per-device memory record."""

import numpy as np
import pytest

from configs import paper_200m
from experiments.aot_memory.aot_memory import compiled_train_step_memory
from lssvwm.config_loading import load_config
from lssvwm.models import WorldModelConfig, count_parameters


@pytest.mark.parametrize("mixer", list(paper_200m.DEPTHS))
def test_paper_models_are_matched_at_200m_parameters(mixer):
    config = load_config(f"configs/paper_200m.py:mixer={mixer}")
    params = count_parameters(WorldModelConfig.from_mapping(config.model.to_dict()))
    assert 190e6 < params < 210e6, f"{mixer}: {params / 1e6:.1f}M"
    assert config.curriculum.lengths == (400, 800) and config.training.window_length == 800


@pytest.mark.slow  # ~40 s of compiling on 8 fake devices; an experiment tool, not the library
def test_tiny_train_step_compiles_ahead_of_time():
    config = load_config("configs/quickstart.py:variant=tiny")
    record, compiled = compiled_train_step_memory(config, window=8, batch=2)
    sizes = record["per_device"]
    # Arguments hold at least the parameters, EMA and two Adam moments in float32.
    assert sizes["argument_bytes"] >= 4 * 4 * record["num_params"]
    assert sizes["temp_bytes"] > 0 and sizes["peak_estimate_bytes"] >= sizes["argument_bytes"]
    assert (record["window_frames"], record["global_batch"]) == (8, 2)
    assert compiled is not None and np.isfinite(record["compile_seconds"])


# ---- compiling for a TPU topology (experiments/aot_memory/tpu.py) --------------------------------


def test_hbm_table_and_fit_verdict():
    from experiments.aot_memory import tpu

    assert tpu.HBM_GIB == {"v4": 32, "v5e": 16, "v5p": 95, "v6e": 32, "h100": 80}
    assert [tpu.chip_of(t) for t in ("v5e:2x4", "v5p:2x2x1", "v6e:2x2", "h100:8")] == [
        "v5e",
        "v5p",
        "v6e",
        "h100",
    ]
    assert [tpu.chips_in(t) for t in ("v5e:2x2", "v5e:2x4", "v5p:2x2x1", "h100:8")] == [4, 8, 4, 8]
    with pytest.raises(ValueError, match="unknown chip"):
        tpu.chip_of("v9z:2x2")
    gib = 2**30
    exactly = tpu.fit_verdict(16 * gib, "v5e")
    assert exactly["fits"] and exactly["headroom_gib"] == 0 and exactly["hbm_gib"] == 16
    over = tpu.fit_verdict(16 * gib + 1, "v5e")
    assert not over["fits"] and over["headroom_gib"] <= 0
    assert tpu.fit_verdict(40 * gib, "v5p")["fits"] and not tpu.fit_verdict(40 * gib, "v6e")["fits"]
    sizes = {"argument_bytes": 10, "output_bytes": 9, "temp_bytes": 100, "alias_bytes": 9}
    assert tpu.peak_bytes(sizes) == 110


def test_compiler_out_of_memory_message_is_read():
    from experiments.aot_memory import tpu

    message = (
        "RESOURCE_EXHAUSTED: XLA:TPU compile permanent error. Ran out of memory in memory space "
        "hbm. Used 45.48G of 15.75G hbm. Exceeded hbm capacity by 29.73G."
    )
    oom = tpu.parse_hbm_oom(message)
    assert oom == {
        "used_bytes": int(45.48 * 2**30),
        "capacity_bytes": int(15.75 * 2**30),
        "counted": "used",
    }
    # When the compiler stops early it names the temporaries alone (paper_200m on v5e 2x2).
    early = (
        "RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory required for HLO "
        "temporaries (37.75G) exceeds available HBM (15.75G)."
    )
    assert tpu.parse_hbm_oom(early) == {
        "used_bytes": int(37.75 * 2**30),
        "capacity_bytes": int(15.75 * 2**30),
        "counted": "temporaries",
    }
    assert tpu.parse_hbm_oom("INVALID_ARGUMENT: something else") is None
    assert tpu.parse_hbm_oom("Used 512.0M of 16.00G hbm")["used_bytes"] == 512 * 2**20


def test_grid_records_are_named_per_entry():
    from experiments.aot_memory import tpu

    entries = tpu.grid()
    names = [tpu.record_name(*entry) for entry in entries]
    assert len(set(names)) == len(names)  # one JSON per (topology, mixer, window, remat)
    assert tpu.record_name("v5p:2x2x1", "lssvwm", 800, False) == "v5p_2x2x1_lssvwm_800_noremat.json"
    assert {m for _, m, _, _ in entries} >= {"lssvwm", "causal_full", "mamba2"}


def _libtpu_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("libtpu") is not None


@pytest.mark.slow  # a TPU compile of the tiny model: ~30 s of CPU (5 min on the loaded 2 cores)
@pytest.mark.skipif(
    not _libtpu_available(), reason="libtpu not installed: pip install '.[tpu-aot]'"
)
def test_tiny_train_step_compiles_for_a_tpu_topology(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from experiments.aot_memory import tpu

    out = tmp_path / "tiny.json"
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)  # the suite's CPU-compile flags are not libtpu's
    # In a process of its own: libtpu, once loaded, stays in the process.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.aot_memory.tpu",
            "--topology=v5e:2x2",
            "--config=configs/quickstart.py:variant=tiny",
            "--window=8",
            f"--out={out}",
        ],
        check=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    record = json.loads(out.read_text())
    assert record["compiled"] and record["backend"] == "tpu" and record["chips"] == 4
    assert record["device_kind"] == "TPU v5 lite" and record["global_batch"] == 4
    assert record["libtpu"] and record["jax"]
    sizes = record["per_device"]
    assert sizes["argument_bytes"] >= 4 * 4 * record["num_params"] / 4  # fp32 state, FSDP-4
    # The TPU compiler keeps a model this small out of HBM temporaries altogether (measured: 0).
    assert sizes["temp_bytes"] >= 0 and sizes["output_bytes"] > 0
    verdict = record["verdict"]
    need = tpu.peak_bytes(sizes)
    assert abs(verdict["need_gib"] - need / 2**30) < 0.01
    assert verdict["fits"] == (need <= 16 * 2**30) and verdict["fits"]  # a tiny model fits
    assert record["flops_per_device"] > 0 and record["compile_seconds"] > 0
