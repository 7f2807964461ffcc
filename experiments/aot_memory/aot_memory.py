r"""Ahead-of-time memory check: what one train step of a config needs per device, without the
hardware (the maxtext train_compile idea, ../shared/design/STYLE.md).

    python -m experiments.aot_memory.aot_memory --config=configs/paper_200m.py --devices=8 \
        --window=400 --batch=8 --out=experiments/aot_memory/results/lssvwm_400.json
    python -m experiments.aot_memory.aot_memory --config=configs/paper_200m.py:mixer=mamba2 \
        --window=400 --batch=8 --set=model.remat=False

The train step of `lssvwm.train` (same state, shardings and batch layout) is lowered for
abstract inputs (`jax.ShapeDtypeStruct`, nothing is allocated) and compiled for `--devices`
CPU devices (fake ones, `--xla_force_host_platform_device_count`) on the config's mesh, e.g.
FSDP over all of them. XLA's `memory_analysis` of the compiled step is per device: arguments
(parameters, EMA, optimizer moments, this device's rows of the batch), outputs, temporaries
(activations kept for the backward pass and scratch) and the aliased bytes (the donated state,
counted once). The sharded state (arguments) is exact. The temporaries are the CPU compiler's
and only an upper bound for an accelerator: it does not keep rematerialisation's savings
(measured: remat on vs off 308 vs 311 GiB) and the attention is the unfused XLA kernel; they do
show how the need scales with window, batch and device count (README.md beside this file).
`--set` values are Python literals (`False`, `(4, 4)`), as for `lssvwm.config_loading`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _force_cpu_devices(count: int) -> None:
    """Must run before JAX is imported: `count` host (CPU) devices."""
    if "jax" in sys.modules:
        raise RuntimeError("set the device count before importing jax")
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


def compiled_train_step_memory(
    config, *, window: int | None = None, batch: int | None = None, devices=None
):
    """(record, compiled step) for `config` (an ml_collections config of `lssvwm.train`) on
    `devices` (default: every device; compile-only TPU devices from `tpu.topology_devices`)."""
    from lssvwm.models import count_parameters
    from lssvwm.run_spec import RunSpec
    from lssvwm.training.build import build

    spec = RunSpec.from_config(config, check_data=False)
    window = int(window or spec.training.window_length)
    batch = int(batch or spec.training.batch_size)
    run = build(spec, devices=devices)  # the trainer's build: same state, shardings and step
    parallel = run.parallel
    if batch % parallel.batch_parts:
        raise ValueError(
            f"batch {batch} does not split {parallel.batch_parts} ways over the batch axes"
        )
    model_config = spec.model
    step = run.make_train_step()
    state = run.abstract_state
    carry = run.abstract_carry(batch)
    batch_spec = run.abstract_batch(batch, window)
    begin, begin_cpu = time.perf_counter(), time.process_time()
    with parallel.activate():
        compiled = step.lower(state, carry, batch_spec).compile()
    compile_seconds = time.perf_counter() - begin
    compile_cpu_seconds = time.process_time() - begin_cpu
    analysis = compiled.memory_analysis()
    sizes = {}
    if analysis is not None:
        for name in ("argument", "output", "temp", "alias", "generated_code"):
            sizes[f"{name}_bytes"] = int(getattr(analysis, f"{name}_size_in_bytes"))
        sizes["peak_estimate_bytes"] = (
            sizes["argument_bytes"]
            + sizes["output_bytes"]
            + sizes["temp_bytes"]
            - sizes["alias_bytes"]
        )
    devices_used = list(parallel.mesh.devices.flat)
    record = {
        "mixer": model_config.mixer,
        "num_params": int(count_parameters(model_config)),
        "window_frames": window,
        "global_batch": batch,
        "tokens_per_frame": model_config.tokens_per_frame,
        "remat": bool(model_config.remat),
        "mesh": {k: int(v) for k, v in parallel.mesh.shape.items()},
        "devices": len(devices_used),
        "device_kind": devices_used[0].device_kind,
        "per_device": sizes,
        "flops_per_device": step_flops(compiled),
        "compile_seconds": round(compile_seconds, 1),
        "compile_cpu_seconds": round(compile_cpu_seconds, 1),
        "backend": devices_used[0].platform,
    }
    return record, compiled


def step_flops(compiled) -> float | None:
    """XLA's cost analysis of the compiled (SPMD-partitioned, so per-device) step: its FLOPs, or
    None where the backend gives none. JAX returns a dict (older versions a list of one)."""
    try:
        cost = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 -- some backends do not implement it
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    flops = (cost or {}).get("flops")
    return float(flops) if flops is not None else None


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/paper_200m.py")
    parser.add_argument("--devices", type=int, default=8, help="fake CPU devices for the mesh")
    parser.add_argument("--window", type=int, default=None, help="frames (default: the config's)")
    parser.add_argument("--batch", type=int, default=None, help="global batch (default: config's)")
    parser.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    parser.add_argument("--out", default=None, help="write the record as JSON here")
    args = parser.parse_args(argv)
    _force_cpu_devices(args.devices)
    from lssvwm.config_loading import load_config

    overrides = dict(item.split("=", 1) for item in args.set)
    config = load_config(args.config, overrides=overrides)
    record, _ = compiled_train_step_memory(config, window=args.window, batch=args.batch)
    record["config"] = args.config
    record["overrides"] = overrides
    gib = {k: round(v / 2**30, 3) for k, v in record["per_device"].items()}
    print(json.dumps({**record, "per_device_gib": gib}, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({**record, "per_device_gib": gib}, f, indent=2)
            f.write("\n")
    return record


if __name__ == "__main__":
    main()
