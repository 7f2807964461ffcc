r"""Compile `lssvwm.train`'s train step for a real TPU topology on this CPU host, without the
hardware: per-chip memory, a fits-in-HBM verdict, FLOPs per step and compile time.

    pip install -e '.[tpu-aot]'     # libtpu, the TPU compiler, at the version jax[tpu] pins
    python -m experiments.aot_memory.tpu --topology=v5e:2x2 \
        --config=configs/paper_200m.py:mixer=lssvwm --window=400
    python -m experiments.aot_memory.tpu --grid     # the README's table, resumable

`jax.experimental.topologies.get_topology_desc(topology_name="v5e:2x2", platform="tpu")` loads
libtpu and returns compile-only devices of that slice (no chips needed); the trainer's build
(`lssvwm.training.build`) lays its mesh over them, FSDP over every chip with one window per chip
by default, and the step is lowered for abstract inputs and compiled by the TPU compiler.
`memory_analysis()` is then the TPU compiler's per-chip HBM plan (arguments = sharded parameters,
EMA, Adam moments and this chip's batch rows; temporaries = activations and scratch, after its
own rematerialisation and scheduling), `cost_analysis()` the per-chip FLOPs of one step. When
the plan does not fit, the TPU compiler refuses to compile (RESOURCE_EXHAUSTED, "Ran out of
memory in memory space hbm"); the record then holds the compiler's message and the bytes it says
the step needs, and the verdict is "no".

One record per (topology, mixer, window, remat) under results/tpu/, skipped when it exists.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

GIB = 2**30

# HBM per chip, GiB. TPU: Cloud TPU system-architecture pages (docs.cloud.google.com/tpu/docs/
# v4, v5e, v5p, v6e: "HBM capacity per chip" 32, 16, 95 and 32; the pages write GB or GiB, the
# chips carry 2^30-byte multiples). H100 SXM: NVIDIA's H100 datasheet, 80 GB HBM3.
HBM_GIB = {"v4": 32, "v5e": 16, "v5p": 95, "v6e": 32, "h100": 80}
# `Device.device_kind` of libtpu's compile-only devices -> the chip names above.
DEVICE_KINDS = {"TPU v4": "v4", "TPU v5 lite": "v5e", "TPU v5": "v5p", "TPU v6 lite": "v6e"}

RESULTS = Path(__file__).parent / "results" / "tpu"
MIXERS = ("lssvwm", "causal_full", "mamba2")
WINDOWS = (400, 800)


def grid() -> list[tuple[str, str, int, bool]]:
    """(topology, mixer, window, remat) of the README's table, in the order they are run (most
    telling first: the grid is resumable and may be stopped part-way on a slow host). One window
    per chip, FSDP over every chip, throughout."""
    entries = []
    # The chip with the most HBM (95 GiB): the full per-chip plan of every model and window.
    entries += [("v5p:2x2x1", m, w, True) for w in WINDOWS for m in MIXERS]
    # The smallest (16 GiB), and the same plans without remat.
    entries += [("v5e:2x2", m, 400, True) for m in MIXERS]
    entries += [("v5p:2x2x1", m, 400, False) for m in MIXERS]
    # 32 GiB chips, a bigger v5e slice (the state's share per chip halves), 800 frames on v5e.
    entries += [("v6e:2x2", m, w, True) for w in WINDOWS for m in MIXERS]
    entries += [("v5e:2x4", m, 400, True) for m in MIXERS]
    entries += [("v5e:2x2", m, 800, True) for m in MIXERS]
    entries += [("v5p:2x2x1", m, 800, False) for m in MIXERS]
    return entries


def chip_of(topology: str) -> str:
    """`"v5e:2x4"` -> `"v5e"` (the HBM_GIB key)."""
    chip = topology.split(":", 1)[0].lower()
    if chip not in HBM_GIB:
        raise ValueError(f"unknown chip {chip!r} in topology {topology!r}; known: {list(HBM_GIB)}")
    return chip


def chips_in(topology: str) -> int:
    """`"v5p:2x2x1"` -> 4; `"h100:8"` -> 8."""
    count = 1
    for side in topology.split(":", 1)[1].split("x"):
        count *= int(side)
    return count


def peak_bytes(sizes: dict) -> int:
    """Per-chip bytes live at once: arguments + outputs + temporaries - the donated (aliased)
    state counted twice. Generated code and host-side buffers are not in HBM's plan here."""
    return (
        sizes["argument_bytes"] + sizes["output_bytes"] + sizes["temp_bytes"] - sizes["alias_bytes"]
    )


def fit_verdict(need_bytes: int, chip: str) -> dict:
    """Does `need_bytes` per chip fit `chip`'s HBM? The verdict and the numbers behind it."""
    hbm = HBM_GIB[chip] * GIB
    return {
        "chip": chip,
        "hbm_gib": HBM_GIB[chip],
        "need_gib": round(need_bytes / GIB, 2),
        "fits": bool(need_bytes <= hbm),
        "headroom_gib": round((hbm - need_bytes) / GIB, 2),
    }


_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def _parse_size(text: str) -> int:
    match = re.fullmatch(r"([0-9.]+)\s*([KMGT]?)i?B?", text.strip())
    if not match:
        raise ValueError(f"not a size: {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


# The TPU compiler's two out-of-memory messages (libtpu 0.0.42): the whole plan's use, or -- when
# it stops early -- the temporaries alone (a lower bound on the need: arguments not counted).
_HBM_OOM = (
    ("used", r"Used ([0-9.]+[KMGT]?i?B?) of ([0-9.]+[KMGT]?i?B?) hbm"),
    (
        "temporaries",
        r"required for HLO temporaries \(([0-9.]+[KMGT]?i?B?)\) exceeds available HBM "
        r"\(([0-9.]+[KMGT]?i?B?)\)",
    ),
)


def parse_hbm_oom(message: str) -> dict | None:
    """The bytes the TPU compiler says a step needs, from its out-of-memory error, e.g.
    "Ran out of memory in memory space hbm. Used 45.48G of 15.75G hbm. Exceeded hbm capacity by
    29.73G." or "Ran out of memory on HBM, the total memory required for HLO temporaries
    (37.75G) exceeds available HBM (15.75G)." -> {"used_bytes", "capacity_bytes", "counted":
    "used" | "temporaries"}; None if the message is not one."""
    for counted, pattern in _HBM_OOM:
        match = re.search(pattern, message)
        if match:
            return {
                "used_bytes": _parse_size(match.group(1)),
                "capacity_bytes": _parse_size(match.group(2)),
                "counted": counted,
            }
    return None


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def libtpu_version() -> str | None:
    return package_version("libtpu")


def libtpu_pinned_by_jax() -> str | None:
    """The libtpu requirement of the installed jax's `tpu` extra ("libtpu==0.0.42.*" for jax
    0.10.2): the TPU compiler this jax is released with. Another libtpu may still load, but its
    compiler is not the one a TPU VM with `jax[tpu]` of this version would run."""
    for requirement in importlib.metadata.requires("jax") or ():
        if requirement.startswith("libtpu") and 'extra == "tpu"' in requirement:
            return requirement.split(";")[0].strip()
    return None


def prepare_environment() -> None:
    """Environment for a compile-only libtpu on a host with no TPU (before libtpu loads)."""
    # No TPU VM here: libtpu would otherwise ask the GCE metadata server for the slice's
    # accelerator type and worker addresses (it warns and goes on, but each query waits on a
    # server that is not there). JAX sets the same when it finds no chips.
    os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
    # libtpu takes /tmp/libtpu_lockfile so that two processes do not drive the same chips; a
    # second compile-only process would stop with "Internal error when accessing libtpu
    # multi-process lockfile". Compiling drives no chip, so any number may run at once.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    # Only the CPU backend runs here: without this JAX, finding libtpu installed, would try to
    # open a TPU client at the first JAX call and fail (no chips); the compile-only topology does
    # not need a client.
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


def topology_devices(topology: str):
    """Compile-only devices of `topology`: a TPU slice ("v5e:2x2", "v5p:2x2x1", "v6e:2x2") from
    libtpu, or `"h100:N"`, N H100s of one host, from JAX's CUDA plugin (below)."""
    prepare_environment()
    chip = chip_of(topology)
    if chip == "h100":
        return h100_devices(chips_in(topology))
    if libtpu_version() is None and not os.environ.get("TPU_LIBRARY_PATH"):
        raise RuntimeError("libtpu is not installed: pip install -e '.[tpu-aot]'")
    from jax.experimental import topologies

    devices = topologies.get_topology_desc(topology_name=topology, platform="tpu").devices
    kinds = {d.device_kind for d in devices}
    if len(devices) != chips_in(topology) or kinds != {_kind_of(chip)}:
        # v4 comes back as one device per TensorCore (2 per chip), which JAX's meshes refuse.
        raise RuntimeError(
            f"{topology}: libtpu gave {len(devices)} devices of kind {sorted(kinds)}, expected "
            f"{chips_in(topology)} chips of one kind"
        )
    return devices


# What XLA's GPU compiler needs to know of an H100 SXM when no GPU is attached (the
# GpuTargetConfigProto a compile-only CUDA topology takes as `target_config`): the hardware
# figures of XLA's own spec of this card (openxla/xla, xla/backends/gpu/target_config/specs/
# h100_sxm.txtpb), without its per-dtype rate tables, which only the cost model reads.
H100_SXM_TARGET = """
gpu_device_info {
  threads_per_block_limit: 1024  threads_per_warp: 32  shared_memory_per_block: 49152
  shared_memory_per_core: 233472  threads_per_core_limit: 2048  core_count: 132
  fpus_per_core: 128  block_dim_limit_x: 2147483647  block_dim_limit_y: 65535
  block_dim_limit_z: 65535  memory_bandwidth: 3352320000000  l2_cache_size: 52428800
  clock_rate_ghz: 1.98  device_memory_size: 84942979072  shared_memory_per_block_optin: 232448
  cuda_compute_capability { major: 9 }
  registers_per_core_limit: 65536  registers_per_block_limit: 65536
}
platform_name: "CUDA"
dnn_version_info { major: 8 minor: 9 patch: 4 }
device_description_str: "NVIDIA H100 80GB HBM3"
"""


def h100_devices(count: int):
    """`count` compile-only H100s of one host: JAX's CUDA PJRT plugin (`jax-cuda12-plugin`, no
    GPU, driver or CUDA libraries needed) makes a topology from a shape "slices x hosts x
    devices" (`topology=`) and a target description (`target_config=`)."""
    from jax.experimental import topologies

    try:
        description = topologies.get_topology_desc(
            topology_name="",
            platform="cuda",
            topology=f"1x1x{count}",
            target_config=H100_SXM_TARGET,
        )
    except (NotImplementedError, RuntimeError) as error:
        raise RuntimeError(
            f"no compile-only CUDA topology ({error}); pip install 'jax-cuda12-plugin==<jax>'"
        ) from error
    return description.devices


def _kind_of(chip: str) -> str:
    return {v: k for k, v in DEVICE_KINDS.items()}[chip]


def git_commit() -> dict:
    root = Path(__file__).resolve().parents[2]

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=False
        ).stdout

    # Uncommitted changes to the library or configs this compile traced (others' work in
    # progress); untracked files left out (a worktree's `lssvwm/configs` link, scratch files).
    status = git("status", "--porcelain", "--untracked-files=no", "--", "lssvwm", "configs")
    dirty = [line[3:] for line in status.splitlines()]
    return {"commit": git("rev-parse", "HEAD").strip(), "dirty_library_files": dirty}


def record_name(topology: str, mixer: str, window: int, remat: bool) -> str:
    return f"{topology.replace(':', '_')}_{mixer}_{window}{'' if remat else '_noremat'}.json"


def compile_for_topology(
    config, topology: str, *, window: int | None = None, batch_per_chip: int = 1
) -> dict:
    """Compile `config`'s train step for `topology`: the record (no file written)."""
    import jax

    from experiments.aot_memory.aot_memory import compiled_train_step_memory
    from lssvwm.common.platform import compiling_for

    chip = chip_of(topology)
    platform = "cuda" if chip == "h100" else "tpu"
    begin = time.perf_counter()
    devices = topology_devices(topology)
    batch = batch_per_chip * len(devices)
    config = config.copy_and_resolve_references()
    with config.unlocked():
        # The build checks that the config's own batch splits over the mesh: make it this one.
        config.training.batch_size = batch
    base = {
        "topology": topology,
        "chips": len(devices),
        "batch_per_chip": batch_per_chip,
        "jax": jax.__version__,
        "libtpu": libtpu_version(),
        "libtpu_pinned_by_jax": libtpu_pinned_by_jax(),
    }
    if platform == "cuda":
        base["compiler"] = f"jax-cuda12-plugin {package_version('jax-cuda12-plugin')}"
    else:
        base["compiler"] = f"libtpu {base['libtpu']}"
    try:
        # Traced as `platform` traces it (the SSD schedule, the attention kernel), not as the
        # CPU host would.
        with compiling_for(platform):
            record, _ = compiled_train_step_memory(
                config, window=window, batch=batch, devices=devices
            )
    except Exception as error:  # noqa: BLE001 -- the compiler's refusal is the result
        message = str(error)
        oom = parse_hbm_oom(message)
        if oom is None:
            raise
        model = config.model
        return {
            **base,
            "mixer": model.mixer,
            "window_frames": int(window or config.training.window_length),
            "global_batch": batch,
            "remat": bool(model.remat),
            "compiled": False,
            "compiler_error": message[:2000],
            "compiler_used_bytes": oom["used_bytes"],
            "compiler_counted": oom["counted"],  # "temporaries": a lower bound on the need
            "compiler_capacity_bytes": oom["capacity_bytes"],
            "verdict": fit_verdict(oom["used_bytes"], chip),
            "wall_seconds": round(time.perf_counter() - begin, 1),
        }
    record = {**base, **record, "compiled": True}
    record["verdict"] = fit_verdict(peak_bytes(record["per_device"]), chip)
    record["per_device_gib"] = {k: round(v / GIB, 3) for k, v in record["per_device"].items()}
    record["wall_seconds"] = round(time.perf_counter() - begin, 1)
    return record


def run_one(
    topology: str,
    config_name: str,
    *,
    window: int | None,
    overrides: dict,
    out: Path | None,
    command: str,
) -> dict:
    from lssvwm.config_loading import load_config

    config = load_config(config_name, overrides=overrides)
    record = compile_for_topology(config, topology, window=window)
    record.update(config=config_name, overrides=overrides, command=command, **git_commit())
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=2) + "\n")
    return record


def summary_line(record: dict) -> str:
    verdict = record["verdict"]
    flops = record.get("flops_per_device")
    return (
        f"{record['topology']:10s} {record['mixer']:12s} {record['window_frames']:4d} "
        f"remat={record['remat']!s:5s} need {verdict['need_gib']:8.2f} GiB of "
        f"{verdict['hbm_gib']:3d}: fits={verdict['fits']!s:5s} "
        f"flops/chip={(flops or 0) / 1e12:8.1f}T wall {record['wall_seconds']:.0f}s"
    )


def table(records: list[dict]) -> str:
    """The README's markdown table of `records` (per chip, GiB)."""
    lines = [
        "| model | topology | window | remat | args | temps | outputs | need | HBM | fits? "
        "| TFLOPs/chip/step | compile (wall / CPU s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = {m: i for i, m in enumerate(MIXERS)}
    key = lambda r: (order.get(r["mixer"], 9), r["window_frames"], r["topology"], not r["remat"])  # noqa: E731
    for r in sorted(records, key=key):
        v = r["verdict"]
        if r.get("compiled", True):
            g = r["per_device_gib"]
            sizes = f"{g['argument_bytes']:.2f} | {g['temp_bytes']:.2f} | {g['output_bytes']:.2f}"
            flops = f"{r['flops_per_device'] / 1e12:,.1f}" if r.get("flops_per_device") else "-"
            seconds = f"{r['compile_seconds']:.0f} / {r['compile_cpu_seconds']:.0f}"
        else:
            sizes, flops = "refused | (compiler: out of HBM) | -", "-"
            seconds = f"{r['wall_seconds']:.0f} / -"
        # A refusal that names the temporaries alone: the need is at least that.
        at_least = ">= " if r.get("compiler_counted") == "temporaries" else ""
        lines.append(
            f"| {r['mixer']} | {r['topology']} | {r['window_frames']} | "
            f"{'on' if r['remat'] else 'off'} | {sizes} | {at_least}{v['need_gib']:.2f} | "
            f"{v['hbm_gib']} | "
            f"{'yes' if v['fits'] else 'no'} | {flops} | {seconds} |"
        )
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topology", default="v5e:2x2")
    parser.add_argument("--config", default="configs/paper_200m.py")
    parser.add_argument("--window", type=int, default=None, help="frames (default: the config's)")
    parser.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    parser.add_argument("--out", default=None, help="write the record as JSON here")
    parser.add_argument("--grid", action="store_true", help="the README's grid into results/tpu/")
    parser.add_argument("--only", default=None, help="with --grid: mixers, comma-separated")
    parser.add_argument(
        "--table", action="store_true", help="print the README table of results/tpu"
    )
    args = parser.parse_args(argv)
    if args.table:
        records = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
        print(table(records))
        return records
    prepare_environment()
    command = "python -m experiments.aot_memory.tpu " + " ".join(argv or sys.argv[1:])
    if not args.grid:
        overrides = dict(item.split("=", 1) for item in args.set)
        record = run_one(
            args.topology,
            args.config,
            window=args.window,
            overrides=overrides,
            out=Path(args.out) if args.out else None,
            command=command,
        )
        print(json.dumps(record, indent=2))
        return [record]
    records = []
    only = set(args.only.split(",")) if args.only else None
    for topology, mixer, window, remat in grid():
        if only and mixer not in only:
            continue
        out = RESULTS / record_name(topology, mixer, window, remat)
        if out.exists():
            records.append(json.loads(out.read_text()))
            continue
        overrides = {} if remat else {"model.remat": "False"}
        one = " ".join(
            [
                f"--topology={topology}",
                f"--config=configs/paper_200m.py:mixer={mixer}",
                f"--window={window}",
                *(f"--set={k}={v}" for k, v in overrides.items()),
                f"--out={out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}",
            ]
        )
        record = run_one(
            topology,
            f"configs/paper_200m.py:mixer={mixer}",
            window=window,
            overrides=overrides,
            out=out,
            command=f"python -m experiments.aot_memory.tpu {one}",
        )
        print(summary_line(record), flush=True)
        records.append(record)
    return records


if __name__ == "__main__":
    main()
