r"""Cost curves, measured the paper's way (Fig. 8): training cost against the window length and
per-frame generation cost against the frame index, for several models side by side.

    python -m experiments.bench_cost.bench_cost                       # the CPU record (README)
    python -m experiments.bench_cost.bench_cost --config configs/paper_200m.py \
        --models lssvwm,causal_full --train-windows 100,200,400 --train-batch 1 \
        --frames 100,1000 --out /tmp/cost_200m.json                   # paper scale, accelerator

For every model of `--models` (the mixers of `--config`, loaded as `CONFIG:mixer=NAME` with the
`--set` overrides), in its own worker process (so a model that does not fit, or crashes, costs
only its own rows, and each model's peak memory is its own):
  * **training**: for each window T of `--train-windows`, the real jitted, donating train step of
    `lssvwm.train` on a `--train-batch` x T batch of random episode fields: compile seconds,
    XLA's `memory_analysis` (temporaries, arguments) and `cost_analysis` FLOPs, the median step
    seconds, and the achieved FLOP/s as a fraction of this device's matmul peak measured in the
    same process (`matmul_peak`). Every window is compiled first and the steps are then timed
    round-robin (`--reps` rounds, each running every window in a short burst: `round_robin`),
    so that a slow spell of a shared machine falls on every window alike: the ratios are
    measured side by side. On an accelerator a step whose compiled need exceeds the device's
    memory is recorded as not fitting, not run. The growth exponent of the step time in T
    (least squares on log-log) is fitted per model;
  * **rollout**: for each frame N of `--frames`, the per-frame generation time at frame N
    (batch 1, random weights, the config's sampler steps) after a prefilled history of
    N - `--window` // 2 frames, and the carried cache's bytes split into SSM states, attention
    keys/values and the spatial store (`experiments.bench_family`'s method: growing caches
    reserved exactly); models with a growing (full-context) cache stop at `--growing-max`.
    Likewise every N is prefilled first and the frames are then generated round-robin.
  * the worker's peak memory: the process's peak resident set, and on an accelerator the
    device's peak bytes in use.
Every figure is also given relative to the first model's (LSSVWM by default) in the same run.
Writes `--out` (JSON), a markdown table (`.md`) and `<out>_train.png` / `<out>_rollout.png`.

Compiling is most of the wall time on an accelerator (a 200M train step: 1-5 minutes on a GPU
host), and the workers run one after the other so that their timings do not share the device. So
compiles can run ahead, all models at once, into JAX's persistent compilation cache, and the
timed run then loads them:

    python -m experiments.bench_cost.bench_cost ... --compilation-cache /tmp/xla --compile-only
    python -m experiments.bench_cost.bench_cost ... --compilation-cache /tmp/xla
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import threading
import time

MODELS = "lssvwm,causal_full,causal_window,mamba2,spatial_memory"
CONFIG = "configs/maze3d_lssvwm.py"
TRAIN_WINDOWS = "16,32,64,128,256,512"
FRAMES = "20,100,1000,4000,10000"  # N >= WINDOW // 2 + 1
GROWING_MAX = 4000  # frames at most for models whose attention cache grows with the history
WINDOW = 20
MIB = 2**20


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def ints(text: str) -> list[int]:
    return [int(value) for value in text.split(",") if value.strip()]


# ---------------------------------------------------------------------------------------------
# Worker: one model, every window and frame; one JSON line per measurement on stdout.


def matmul_peak(seconds: float = 2.0) -> dict:
    """This device's float32 matmul rate (FLOP/s) at the default precision (TF32 on recent
    NVIDIA GPUs, as the model's own float32 matmuls), and bfloat16's on accelerators."""
    import jax
    import jax.numpy as jnp

    size = 2048 if jax.default_backend() == "cpu" else 8192
    result = {}
    dtypes = [jnp.float32] + ([jnp.bfloat16] if jax.default_backend() != "cpu" else [])
    for dtype in dtypes:
        keys = jax.random.split(jax.random.PRNGKey(0))
        a = jax.random.normal(keys[0], (size, size), dtype)
        b = jax.random.normal(keys[1], (size, size), dtype)
        product = jax.jit(lambda a, b: a @ b)
        jax.block_until_ready(product(a, b))
        calls, begin = 0, time.perf_counter()
        while time.perf_counter() - begin < seconds:
            jax.block_until_ready(product(a, b))
            calls += 1
        result[jnp.dtype(dtype).name] = 2 * size**3 * calls / (time.perf_counter() - begin)
    return result


def device_peak_bytes() -> int | None:
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def device_bytes_limit() -> int | None:
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("bytes_limit")


def model_config_for(args, model: str, overrides: dict):
    from lssvwm.config_loading import load_config

    return load_config(f"{args.config}:mixer={model}", overrides={**args.overrides, **overrides})


class TrainCase:
    """One window's compiled train step (`prepare_train`) and its row; `step()` runs one step
    on its own state (donated and replaced) and returns its seconds."""

    def __init__(self, row: dict, compiled, state, batch):
        self.row, self._compiled, self._state, self._batch = row, compiled, state, batch
        self.loss = None

    def step(self) -> float:
        import jax

        begin = time.perf_counter()
        self._state, _, metrics = self._compiled(self._state, None, self._batch)
        self.loss = jax.block_until_ready(metrics["loss"])
        return time.perf_counter() - begin


def train_spec(args, model: str, window: int):
    """The RunSpec of `model`'s training on `--train-batch` windows of `window` frames."""
    from lssvwm.run_spec import RunSpec

    config = model_config_for(
        args,
        model,
        {
            "seed": args.seed,
            "training.window_length": window,
            "training.batch_size": args.train_batch,
            "model.max_frames": window,
            "eval.context_frames": 1,  # no held-out figures here: any window is valid
        },
    )
    if "curriculum" in config:  # one fixed window (a config's stages end at its own)
        config.curriculum.kind = "none"
    return RunSpec.from_config(config, source=args.config, check_data=False)


def prepare_train(args, model: str, window: int) -> TrainCase:
    """One window's train step, compiled: its row holds compile seconds, XLA's memory and FLOPs,
    and `fits` (False, with a note, where the compiled need exceeds the device)."""
    from experiments.benchmarking import compiled_costs, random_episode_fields
    from lssvwm.models import count_parameters
    from lssvwm.train import model_batch
    from lssvwm.training.build import build

    run = build(train_spec(args, model, window))
    model_config = run.spec.model
    row = dict(
        kind="train",
        model=model,
        window=window,
        batch=args.train_batch,
        params=count_parameters(model_config),
        tokens_per_step=args.train_batch * window * model_config.tokens_per_frame,
    )
    step = run.make_train_step()  # the trainer's step: same shardings, donation and state
    raw = random_episode_fields(model_config, args.train_batch, window, args.seed)
    batch = run.parallel.place_batch(model_batch(raw, model_config))
    state = run.init_state()
    begin = time.perf_counter()
    compiled = step.lower(state, None, batch).compile()
    row["compile_seconds"] = round(time.perf_counter() - begin, 2)
    row.update(compiled_costs(compiled))
    limit = device_bytes_limit()
    need = (row["temp_bytes"] or 0) + (row["argument_bytes"] or 0)
    row["fits"] = limit is None or need <= limit
    if not row["fits"]:
        row["note"] = f"compiled need {need / 2**30:.1f} GiB > device limit {limit / 2**30:.1f} GiB"
    return TrainCase(row, compiled, state, batch)


def round_robin(
    cases: list, run_one, rounds: int, timed_per_round: int, warm_up: bool = True
) -> dict[int, list]:
    """{id(case): seconds} of `rounds` rounds over `cases`: in each, every case in turn runs
    one untimed call (with `warm_up`), then `timed_per_round` timed ones (`run_one(case)`
    returns seconds).

    Side by side: a slow spell of a shared machine falls on every case alike, where timing the
    cases one after the other gives it to whichever ran then. In bursts, each after a call of
    its own: a step right after another program's runs slower on this CPU (measured: the
    16-frame LSSVWM step took 0.44 s after a 512-frame one, 0.20-0.25 s after itself), and
    real training repeats one program."""
    seconds = {id(case): [] for case in cases}
    for _ in range(rounds):
        for case in cases:
            if warm_up:
                run_one(case)
            seconds[id(case)] += [run_one(case) for _ in range(timed_per_round)]
    return seconds


def time_train(cases: list[TrainCase], rounds: int, peak: dict, steps_per_round: int = 2) -> None:
    """Times the cases' train steps (`round_robin`); fills each row's median step seconds."""
    import numpy as np

    seconds = round_robin(cases, lambda case: case.step(), rounds, steps_per_round)
    for case in cases:
        row = case.row
        row["step_seconds"] = float(np.median(seconds[id(case)]))
        row["step_seconds_all"] = [round(s, 5) for s in seconds[id(case)]]
        row["loss_finite"] = bool(np.isfinite(case.loss))
        if row["flops"]:
            row["flops_per_second"] = row["flops"] / row["step_seconds"]
            row["fraction_of_matmul_peak"] = row["flops_per_second"] / peak["float32"]


class RolloutCase:
    """A prefilled stream at frame N (`prepare_rollout`): `unit()` generates the next unit and
    returns its seconds per frame."""

    def __init__(self, row: dict, sampler, cache, actions, history: int, rng):
        self.row, self._sampler, self._cache = row, sampler, cache
        self._actions, self._start, self._rng, self._index = actions, history, rng, 0

    def unit(self) -> float:
        import jax
        import numpy as np

        unit = self._sampler.unit
        actions_U = self._actions[:, self._start : self._start + unit]
        begin = time.perf_counter()
        frames_U, self._cache = self._sampler.sample_unit(
            self._cache, actions_U, self._rng, self._index
        )
        np.asarray(frames_U)  # waits for the unit and brings it to the host, as a rollout does
        jax.block_until_ready(self._cache)
        self._start, self._index = self._start + unit, self._index + 1
        return (time.perf_counter() - begin) / unit


def prepare_rollout(args, model: str, frame: int, network, diffusion) -> RolloutCase | None:
    """A stream of `network` (batch 1, random weights) prefilled with N - `--window` // 2
    frames, its unit function compiled, and the carried cache measured (bench_family's method:
    growing caches reserved for exactly the frames to come)."""
    import jax

    from experiments.bench_family.bench_family import WindowSampler, cache_split
    from experiments.benchmarking import random_episode_fields
    from lssvwm.models import inputs

    model_config = network.config
    history = frame - args.window // 2
    fields = random_episode_fields(model_config, 1, history + args.window, args.seed)
    video = inputs.model_frames(fields, model_config)
    actions = inputs.model_actions(fields, model_config)
    sampler = WindowSampler(network, diffusion, args.window)
    context = video[:, :history], actions[:, :history]
    begin = time.perf_counter()  # compile the prefill (and run it once) off the clock
    cache = jax.block_until_ready(sampler.prefill(*context, jax.random.PRNGKey(1)))
    prefill_compile = time.perf_counter() - begin
    prefill_seconds = None
    if not args.compile_only:
        begin = time.perf_counter()
        cache = jax.block_until_ready(sampler.prefill(*context, jax.random.PRNGKey(1)))
        prefill_seconds = time.perf_counter() - begin
    rng = jax.random.PRNGKey(0)
    begin = time.perf_counter()  # compile the unit (and run it once) on a result thrown away
    first_unit = actions[:, history : history + sampler.unit]
    jax.block_until_ready(sampler.sample_unit(cache, first_unit, rng))
    unit_compile = time.perf_counter() - begin
    if args.compile_only:
        log(f"{model} rollout N={frame}: compiled in {prefill_compile + unit_compile:.0f} s")
        return None
    row = dict(
        kind="rollout",
        model=model,
        frame=frame,
        history=history,
        prefill_seconds=prefill_seconds,
        prefill_compile_seconds=prefill_compile,
        unit_compile_seconds=unit_compile,
        cache=cache_split(cache),
        sampler_steps=diffusion.sampler_steps,
    )
    return RolloutCase(row, sampler, cache, actions, history, rng)


def time_rollouts(cases: list[RolloutCase], units: int, rounds: int = 4) -> None:
    """Generates at most `units` units of every stream, in at most `rounds` rounds
    (`round_robin`: one untimed unit, then timed ones); fills each row's median seconds per
    frame."""
    import numpy as np

    if units >= 2:  # each stream generates exactly `units` units: its actions end there
        rounds = min(rounds, units // 2)
        seconds = round_robin(cases, lambda case: case.unit(), rounds, units // rounds - 1)
    else:
        seconds = round_robin(cases, lambda case: case.unit(), 1, 1, warm_up=False)
    for case in cases:
        case.row["seconds_per_frame"] = float(np.median(seconds[id(case)]))
        case.row["seconds_per_frame_all"] = [round(s, 5) for s in seconds[id(case)]]


def rollout_network(args, model: str):
    """(the model with random weights, its DiffusionConfig) for the rollout streams."""
    from flax import nnx

    from lssvwm.diffusion import DiffusionConfig
    from lssvwm.models import WorldModel, WorldModelConfig

    config = model_config_for(args, model, {})
    model_config = WorldModelConfig.from_mapping(config.model.to_dict())
    network = nnx.jit(lambda: WorldModel(model_config, rngs=nnx.Rngs(args.seed)))()
    return network, DiffusionConfig.from_mapping(config.diffusion)


def grows_with_history(args, model: str) -> bool:
    from lssvwm.models import WorldModelConfig

    model_config = WorldModelConfig.from_mapping(model_config_for(args, model, {}).model.to_dict())
    return model_config.mixer == "causal_full"


def rollout_frames(args, model: str) -> list[int]:
    """The frames N of `--frames` the model's rollout is measured at (`--growing-max` at most
    where its cache grows with the history)."""
    grows = grows_with_history(args, model)
    return [n for n in args.frames if not grows or n <= args.growing_max]


def use_compilation_cache(directory: str) -> None:
    """JAX's persistent compilation cache in `directory`, for every compile however short (the
    default skips those under a second)."""
    import jax

    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def compile_worker(args) -> None:
    """`--compile-only`: every window's train step and every N's rollout compiled (into the
    persistent cache), nothing timed; a failure is logged and the rest goes on."""
    model = args.worker
    for window in args.train_windows:
        try:
            case = prepare_train(args, model, window)
        except Exception as error:  # noqa: BLE001 -- e.g. out of memory: longer windows too
            log(f"{model} train T={window}: {_first_line(error)}")
            break
        log(f"{model} train T={window}: compiled in {case.row['compile_seconds']:.0f} s")
        del case
    frames = rollout_frames(args, model)
    if frames:
        network, diffusion = rollout_network(args, model)
    for frame in frames:
        try:
            prepare_rollout(args, model, frame, network, diffusion)
        except Exception as error:  # noqa: BLE001
            log(f"{model} rollout N={frame}: {_first_line(error)}")
            break


def worker(args) -> None:
    import jax

    if args.compilation_cache:
        use_compilation_cache(args.compilation_cache)
    if args.compile_only:
        compile_worker(args)
        return
    model = args.worker
    emit = lambda row: print("ROW " + json.dumps(row), flush=True)  # noqa: E731
    peak = matmul_peak()
    emit(
        dict(
            kind="device",
            model=model,
            matmul_peak=peak,
            backend=jax.default_backend(),
            device=str(jax.devices()[0].device_kind),
            jax=jax.__version__,
        )
    )
    # Training: every window compiled first, then timed round-robin (time_train).
    cases = []
    for window in args.train_windows:
        try:
            case = prepare_train(args, model, window)
        except Exception as error:  # noqa: BLE001 -- e.g. out of memory: record it, go on
            emit(dict(kind="train", model=model, window=window, error=_first_line(error)))
            break  # longer windows need more
        log(f"{model} train T={window}: compiled in {case.row['compile_seconds']:.0f} s")
        if not case.row["fits"]:
            emit(case.row)
            break
        cases.append(case)
    try:
        time_train(cases, args.reps, peak)
    except Exception as error:  # noqa: BLE001 -- a step that fails at run time fails them all
        for case in cases:
            case.row["error"] = _first_line(error)
    for case in cases:
        emit(case.row)
        log(_describe(case.row))
    del cases  # their states and compiled steps
    # Generation: every frame N prefilled first, then generated round-robin (time_rollouts).
    frames = rollout_frames(args, model)
    streams = []
    if frames:
        network, diffusion = rollout_network(args, model)
    for frame in frames:
        try:
            streams.append(prepare_rollout(args, model, frame, network, diffusion))
        except Exception as error:  # noqa: BLE001
            emit(dict(kind="rollout", model=model, frame=frame, error=_first_line(error)))
            break
    try:
        if streams:
            time_rollouts(streams, units=max(1, args.window // network.unit))
    except Exception as error:  # noqa: BLE001
        for stream in streams:
            stream.row["error"] = _first_line(error)
    for stream in streams:
        emit(stream.row)
        log(_describe(stream.row))
    emit(
        dict(
            kind="peak",
            model=model,
            process_peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            device_peak_bytes=device_peak_bytes(),
        )
    )


def _first_line(error: Exception) -> str:
    text = f"{type(error).__name__}: {error}"
    return text.strip().splitlines()[0][:400]


def _describe(row: dict) -> str:
    if "error" in row:
        return f"{row['model']} {row['kind']}: ERROR {row['error']}"
    if row["kind"] == "train":
        if not row["fits"]:
            return f"{row['model']} train T={row['window']}: does not fit ({row['note']})"
        return (
            f"{row['model']} train T={row['window']}: {row['step_seconds']:.4f} s/step, temp "
            f"{(row['temp_bytes'] or 0) / MIB:.0f} MiB, {row['flops'] or 0:.3g} FLOP, compile "
            f"{row['compile_seconds']:.0f} s"
        )
    return (
        f"{row['model']} rollout N={row['frame']}: {1e3 * row['seconds_per_frame']:.1f} ms/frame,"
        f" cache {row['cache']['total'] / MIB:.2f} MiB, prefill {row['prefill_seconds']:.1f} s"
    )


# ---------------------------------------------------------------------------------------------
# Parent: one worker per model, then the fits, the table and the plots.


def run_worker(args, argv: list[str], model: str, command: list[str] | None = None) -> list[dict]:
    """The rows of one model's worker process (and a `worker_failed` row if it did not end
    well: out of memory, a crash, `--worker-timeout`). The worker's log lines are shown as
    they come (a model can take half an hour); its stderr is kept for the failure's detail."""
    log(f"{model}: worker starting")
    worker_command = [sys.executable, "-m", "experiments.bench_cost.bench_cost", *argv]
    command = command or [*worker_command, "--worker", model]
    rows = []
    with tempfile.TemporaryFile("w+") as stderr:
        worker = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
        timer = None
        if args.worker_timeout:
            timer = threading.Timer(args.worker_timeout, worker.kill)
            timer.start()
        for line in worker.stdout:
            if line.startswith("ROW "):
                rows.append(json.loads(line[4:]))
            else:
                print(f"  {model}| {line.rstrip()}", flush=True)
        code = worker.wait()
        timed_out = timer is not None and not timer.is_alive() and code != 0
        if timer is not None:
            timer.cancel()
        stderr.seek(0)
        detail = stderr.read().strip().splitlines()[-1:]
    if timed_out:
        code, detail = "timeout", [f"after {args.worker_timeout} s"]
    if code != 0:
        rows.append(dict(kind="worker_failed", model=model, code=code, detail=detail))
        log(f"{model}: worker ended with {code} {detail}")
    return rows


def measured(rows: list[dict], model: str, kind: str) -> list[dict]:
    """The model's rows of `kind` ("train" or "rollout") that hold a measurement."""
    return [
        r
        for r in rows
        if r["model"] == model and r["kind"] == kind and "error" not in r and r.get("fits", True)
    ]


def growth_exponent(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log(y) against log(x)."""
    import numpy as np

    if len(points) < 2:
        return None
    x, y = np.log(np.array(points, dtype=float)).T
    return float(np.polyfit(x, y, 1)[0])


def summarize(rows: list[dict], models: list[str]) -> dict:
    summary = {}
    reference = models[0]
    for model in models:
        train, roll = measured(rows, model, "train"), measured(rows, model, "rollout")
        summary[model] = dict(
            train_time_exponent=growth_exponent([(r["window"], r["step_seconds"]) for r in train]),
            train_temp_exponent=growth_exponent(
                [(r["window"], r["temp_bytes"]) for r in train if r.get("temp_bytes")]
            ),
            seconds_per_frame={r["frame"]: r["seconds_per_frame"] for r in roll},
            cache_bytes={r["frame"]: r["cache"]["total"] for r in roll},
        )
    ref = summary[reference]
    for entry in summary.values():
        entry[f"per_frame_vs_{reference}"] = {
            frame: round(seconds / ref["seconds_per_frame"][frame], 3)
            for frame, seconds in entry["seconds_per_frame"].items()
            if ref["seconds_per_frame"].get(frame)
        }
    return summary


def markdown(record: dict) -> str:
    rows, models = record["rows"], record["models"]
    lines = [f"# Cost curves\n\n    {record['command']}\n"]
    lines.append(
        f"Commit {record['commit'][:10]}, {record['device']}, JAX {record['jax']}, wall "
        f"{record['wall_seconds'] / 60:.1f} min. Matmul peak measured in each worker (float32 at "
        f"default precision): {record['matmul_peak_tflops']} TFLOP/s.\n"
    )
    if record.get("note"):  # what happened around the run, added to its JSON by hand
        lines.append(f"{record['note']}\n")
    lines += ["## Training step against the window", ""]
    lines += ["| model | window | s/step | temp MiB | GFLOP | fraction of matmul peak | note |"]
    lines += ["|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["kind"] != "train":
            continue
        if "error" in r or not r.get("fits"):
            lines.append(
                f"| {r['model']} | {r['window']} | - | - | - | - | "
                f"{r.get('error') or r.get('note')} |"
            )
            continue
        lines.append(
            f"| {r['model']} | {r['window']} | {r['step_seconds']:.4f} | "
            f"{(r['temp_bytes'] or 0) / MIB:.1f} | {(r['flops'] or 0) / 1e9:.1f} | "
            f"{r.get('fraction_of_matmul_peak', float('nan')):.3f} | |"
        )
    lines += ["", "| model | time exponent in the window | temp-bytes exponent |", "|---|---|---|"]
    for model in models:
        s = record["summary"][model]
        cells = [s["train_time_exponent"], s["train_temp_exponent"]]
        cells = ["-" if v is None else f"{v:.2f}" for v in cells]
        lines.append(f"| {model} | {cells[0]} | {cells[1]} |")
    lines += ["", "## Per-frame generation against the frame index", ""]
    lines += ["| model | frame | s/frame | x first model | cache MiB: total / SSM / KV / store |"]
    lines += ["|---|---|---|---|---|"]
    reference = models[0]
    for r in rows:
        if r["kind"] != "rollout":
            continue
        if "error" in r:
            lines.append(f"| {r['model']} | {r['frame']} | - | - | {r['error']} |")
            continue
        ratio = record["summary"][r["model"]][f"per_frame_vs_{reference}"].get(r["frame"])
        cache = " / ".join(f"{r['cache'][k] / MIB:.2f}" for k in ("total", "ssm", "kv", "store"))
        lines.append(
            f"| {r['model']} | {r['frame']} | {r['seconds_per_frame']:.4f} | "
            f"{'-' if ratio is None else f'{ratio:.2f}'} | {cache} |"
        )
    lines += ["", "| model | process peak RSS MiB | device peak MiB |", "|---|---|---|"]
    for r in rows:
        if r["kind"] == "peak":
            device = r["device_peak_bytes"]
            lines.append(
                f"| {r['model']} | {r['process_peak_rss_bytes'] / MIB:.0f} | "
                f"{'-' if device is None else f'{device / MIB:.0f}'} |"
            )
    failed = [r for r in rows if r["kind"] == "worker_failed"]
    for r in failed:
        lines.append(f"\nWorker for {r['model']} ended with {r['code']}: {r['detail']}")
    return "\n".join(lines) + "\n"


def plot(record: dict, out: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, models = record["rows"], record["models"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for model in models:
        train = measured(rows, model, "train")
        if train:
            exponent = record["summary"][model]["train_time_exponent"]
            label = model if exponent is None else f"{model} (T^{exponent:.2f})"
            axes[0].loglog(
                [r["window"] for r in train], [r["step_seconds"] for r in train], "o-", label=label
            )
            axes[1].loglog(
                [r["window"] for r in train],
                [(r["temp_bytes"] or 1) / MIB for r in train],
                "o-",
                label=model,
            )
    axes[0].set(xlabel="training window (frames)", ylabel="train step (s)")
    axes[1].set(xlabel="training window (frames)", ylabel="compiled temporaries (MiB)")
    title = f"training cost ({record['device']})"
    _finish(fig, axes, title, out.with_name(f"{out.stem}_train.png"))

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for model in models:
        roll = measured(rows, model, "rollout")
        if roll:
            frames = [r["frame"] for r in roll]
            axes[0].loglog(frames, [r["seconds_per_frame"] for r in roll], "o-", label=model)
            axes[1].loglog(frames, [r["cache"]["total"] / MIB for r in roll], "o-", label=model)
    axes[0].set(xlabel="frame index N", ylabel="seconds per generated frame at N")
    axes[1].set(xlabel="frame index N", ylabel="carried cache (MiB)")
    title = f"rollout cost ({record['device']})"
    _finish(fig, axes, title, out.with_name(f"{out.stem}_rollout.png"))


def _finish(fig, axes, title: str, path: pathlib.Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    for ax in axes:
        # The measured windows / frames as plain numbers; log axes' minor labels overlap.
        xs = sorted({x for line in ax.lines for x in line.get_xdata()})
        if xs:
            ax.set_xticks(xs)
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str]):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=CONFIG, help="config file taking :mixer=NAME")
    parser.add_argument("--models", default=MODELS, help="mixers, the first is the reference")
    parser.add_argument("--set", action="append", default=[], help="override KEY=VALUE")
    parser.add_argument("--train-windows", default=TRAIN_WINDOWS, help="frames per window")
    parser.add_argument("--train-batch", type=int, default=1, help="windows per train step")
    parser.add_argument(
        "--reps",
        type=int,
        default=3,
        help="rounds of train steps per window (each: 1 untimed step, 2 timed)",
    )
    parser.add_argument("--frames", default=FRAMES, help="frames N of the per-frame times")
    parser.add_argument("--growing-max", type=int, default=GROWING_MAX)
    parser.add_argument("--window", type=int, default=WINDOW, help="frames generated per N")
    parser.add_argument("--worker-timeout", type=float, default=None, help="seconds per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="experiments/bench_cost/results_cpu.json")
    parser.add_argument(
        "--compilation-cache", default=None, help="JAX persistent compilation cache directory"
    )
    parser.add_argument(
        "--compile-only",
        action="store_true",
        help="compile every model at once into --compilation-cache; time nothing, write no record",
    )
    parser.add_argument(
        "--rewrite",
        default=None,
        metavar="RECORD.json",
        help="only remake a record's table (.md) and plots from its JSON (e.g. one from a GPU)",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.train_windows = ints(args.train_windows)
    args.frames = ints(args.frames)
    args.overrides = dict(item.split("=", 1) for item in args.set)
    bad = [f for f in args.frames if f - args.window // 2 < 1]
    if bad:
        parser.error(f"--frames {bad}: each N needs N - {args.window // 2} >= 1 history frames")
    if not pathlib.Path(args.config.partition(":")[0]).is_file():
        parser.error(f"--config {args.config!r}: no such file")
    if args.compile_only and not args.compilation_cache:
        parser.error("--compile-only needs --compilation-cache DIR (where the compiles go)")
    return args


def write_record(args, argv: list[str], rows: list[dict], begin: float) -> dict:
    """The record of the rows so far: JSON, markdown table and plots (after every worker, so an
    interrupted run keeps what it measured)."""
    devices = [r for r in rows if r["kind"] == "device"]
    # LSSVWM_COMMIT first: a copy of the tree on another machine may carry a stale .git
    commit = (
        os.environ.get("LSSVWM_COMMIT")
        or subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    )
    record = dict(
        command=" ".join(["python -m experiments.bench_cost.bench_cost", *argv]),
        commit=commit or "unknown",
        device=devices[0]["device"] if devices else "unknown",
        jax=devices[0]["jax"] if devices else "unknown",
        matmul_peak_tflops={
            r["model"]: {k: round(v / 1e12, 3) for k, v in r["matmul_peak"].items()}
            for r in devices
        },
        models=[m for m in args.models if any(r["model"] == m for r in rows)],
        wall_seconds=round(time.perf_counter() - begin, 1),
        cpu_count=os.cpu_count(),
        rows=rows,
    )
    record["summary"] = summarize(rows, record["models"])
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(record))
    plot(record, out)
    return record


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.rewrite:
        path = pathlib.Path(args.rewrite)
        record = json.loads(path.read_text())
        # From the rows: JSON has turned the summary's frame keys into strings.
        record["summary"] = summarize(record["rows"], record["models"])
        path.with_suffix(".md").write_text(markdown(record))
        plot(record, path)
        log(f"wrote {path.with_suffix('.md')}, {path.stem}_train.png, {path.stem}_rollout.png")
        return
    if args.worker:
        worker(args)
        return
    begin = time.perf_counter()
    if args.compile_only:  # every model at once: compiles are CPU work, nothing is timed
        threads = [
            threading.Thread(target=run_worker, args=(args, argv, model)) for model in args.models
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        log(f"compiled into {args.compilation_cache} in {time.perf_counter() - begin:.0f} s")
        return
    rows = []
    for model in args.models:
        rows += run_worker(args, argv, model)
        record = write_record(args, argv, rows, begin)
        log(f"{model}: done; wrote {args.out} (.md, _train.png, _rollout.png)")
    print(markdown(record))


if __name__ == "__main__":
    main()
