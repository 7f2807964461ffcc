r"""Benchmark: the maze3d model family side by side -- parameters, train step, per-frame cost.

For every member of `configs/maze3d_family.py:FAMILY` (or `--models a,b`), in one process:
  - parameters (`lssvwm.models.count_parameters`);
  - the train step of `lssvwm.train` (jitted, donating; the config's optimizer, diffusion and
    batch_size x window_length batch of random episode fields): median seconds, and XLA's
    compiled temporary and argument bytes (`memory_analysis`) and FLOPs (`cost_analysis`);
  - the per-frame generation time at frame N for each N of `--frames` (default 100 and 1,000),
    with random weights (timing does not depend on training), batch 1, the config's sampler
    steps (`lssvwm.evaluation.streaming.stream_generate`). "Per-frame time at frame N" is the
    cost of generating frames N-9 .. N+10 after a history of N-10 frames: a context of N-10
    random frames is prefilled through the parallel pass, then `--window` (20) frames are
    generated one by one; the figure is the median of their seconds per frame. Also recorded:
    the prefill seconds (compiled beforehand) and the cache bytes after the window, split into
    SSM states, attention keys/values and the spatial-memory store. Why not a rollout of N
    frames: a growing (full-context) cache is reserved for the whole rollout up front, so
    `causal_full` would pay frame N's cost from frame 1 (~3.4 s a frame for all 1,000 frames,
    most of the old run's 80 minutes). Here its cache holds exactly N+10 frames -- the cost at
    frame N; `WindowSampler` reserves exactly, where `WorldModel.reserve` would double the
    prefilled capacity -- and the fixed-size caches (SSM states, windows, the store) are what
    they are at any length;
  - every number relative to LSSVWM's in the same run (LSSVWM is always measured).
Train steps are interleaved across models per repetition (`interleaved_medians`), and so are the
windows (`--rollout-reps`; the median over them): shared machines are noisy, the ratios are the
robust figures. With `--window W` the history is N - W//2 frames (frames N - W//2 + 1 ..
N - W//2 + W are generated).

    python -m experiments.bench_family.bench_family
    python -m experiments.bench_family.bench_family --models lssvwm,causal_full,spatial_memory \
        --frames 30,60 --window 4 --reps 1 --out /tmp/bench_family.json   # smoke test

Writes the record (--out, JSON) and a markdown table beside it (same name, .md).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from configs.maze3d_family import FAMILY
from configs.maze3d_family import config as maze3d_config
from experiments.benchmarking import (
    compiled_costs,
    environment_record,
    interleaved_medians,
    random_episode_fields,
)
from lssvwm.common.progress import FrameProgress
from lssvwm.diffusion import DiffusionConfig, Sampler
from lssvwm.evaluation.streaming import stream_generate
from lssvwm.models import WorldModel, WorldModelConfig, cache_nbytes, count_parameters, inputs
from lssvwm.run_spec import RunSpec
from lssvwm.train import model_batch
from lssvwm.training.build import build

REFERENCE = "lssvwm"
FRAMES = "100,1000"  # the frames N whose per-frame generation time is measured
WINDOW = 20  # frames generated around each N (N-9 .. N+10)
MIB = 2**20


def git_commit() -> dict:
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()

    return dict(commit=git("rev-parse", "HEAD"), dirty=bool(git("status", "--porcelain")))


def cache_split(cache) -> dict:
    """Bytes of a StreamCache: total, SSM (and conv) states, attention keys/values, store."""
    return dict(
        total=cache_nbytes(cache),
        ssm=sum(cache_nbytes(layer.ssm) for layer in cache.layers),
        kv=sum(cache_nbytes(layer.kv) for layer in cache.layers),
        store=cache_nbytes(cache.memory),
    )


def reserve_exactly(cache, frames: int):
    """A StreamCache whose growing (full-causal) attention caches have room for exactly `frames`
    more frames (`WorldModel.reserve` doubles a capacity it must grow, so after a long prefilled
    context it would size the cache for about twice the frames it holds)."""

    def grow(kv):
        if kv is None or kv.ring:
            return kv
        extra = int(jnp.max(kv.filled)) + frames - kv.capacity
        if extra <= 0:
            return kv
        pad = ((0, 0), (0, extra), (0, 0), (0, 0), (0, 0))
        return kv.replace(keys=jnp.pad(kv.keys, pad), values=jnp.pad(kv.values, pad))

    return cache._replace(layers=tuple(lc._replace(kv=grow(lc.kv)) for lc in cache.layers))


class WindowSampler(Sampler):
    """A Sampler whose prefill leaves room for exactly `window` more frames in growing caches
    (`stream_generate`'s own `reserve` then has nothing to add)."""

    def __init__(self, model, config: DiffusionConfig, window: int):
        super().__init__(model, config)
        self.window = window

    def prefill(self, frames_BTHWC, actions, rng, cache=None):
        return reserve_exactly(super().prefill(frames_BTHWC, actions, rng, cache), self.window)


class Member:
    """One family member: its model, the compiled train step (a timing call), its windows."""

    def __init__(self, name: str, seed: int):
        self.name, self.seed = name, seed
        config = maze3d_config(name)
        self.model_config = WorldModelConfig.from_mapping(config.model)
        self.diffusion = DiffusionConfig.from_mapping(config.diffusion)
        self.batch_size = int(config.training.batch_size)
        self.window = int(config.training.window_length)
        self.model = nnx.jit(lambda: WorldModel(self.model_config, rngs=nnx.Rngs(seed)))()
        self._prefilled = set()  # the frames N whose prefill is compiled
        self.row = dict(
            model=name,
            mixer=self.model_config.mixer,
            layers=self.model_config.depth,
            channels=self.model_config.channels,
            params=count_parameters(self.model_config),
            train_batch=[self.batch_size, self.window],
            sampler_steps=self.diffusion.sampler_steps,
        )
        self._compile_train_step(config)

    def _compile_train_step(self, config) -> None:
        config = ml_collections.ConfigDict(config.to_dict())
        config.seed = self.seed
        run = build(RunSpec.from_config(config, check_data=False))  # the trainer's build
        step = run.make_train_step()
        raw = random_episode_fields(self.model_config, self.batch_size, self.window, self.seed)
        self.batch = run.parallel.place_batch(model_batch(raw, self.model_config))
        self.state = run.init_state()  # its own weights: the step donates them
        begin = time.perf_counter()
        self.train_step = step.lower(self.state, None, self.batch).compile()
        self.row["train_compile_seconds"] = round(time.perf_counter() - begin, 2)
        costs = compiled_costs(self.train_step)
        self.row.update({f"train_{key}": value for key, value in costs.items()})

    def train_call(self):
        """One train step (the state is donated: each call continues from the last)."""
        self.state, _, metrics = self.train_step(self.state, None, self.batch)
        return self.state["step"], metrics["loss"]

    def frames_at(self, frame: int, window: int, rep: int) -> dict:
        """Per-frame seconds at `frame` (median of the `window` frames generated after a history
        of frame - window // 2 prefilled frames), the prefill seconds and the cache bytes."""
        history = frame - window // 2
        fields = random_episode_fields(self.model_config, 1, history + window, rep)
        video = inputs.model_frames(fields, self.model_config)
        actions = inputs.model_actions(fields, self.model_config)
        sampler = WindowSampler(self.model, self.diffusion, window)
        context = video[:, :history], actions[:, :history]
        result = {}
        if frame not in self._prefilled:  # compile the prefill (and run it once) off the clock
            begin = time.perf_counter()
            jax.block_until_ready(sampler.prefill(*context, jax.random.PRNGKey(rep)))
            result["prefill_compile_seconds"] = time.perf_counter() - begin
            self._prefilled.add(frame)
        stream = stream_generate(
            sampler,
            *context,
            actions[:, history:],
            jax.random.PRNGKey(rep),
            progress=FrameProgress(window, every_seconds=60, log=log, what=f"{self.name} "),
        )
        return dict(
            result,
            seconds=float(np.median(stream.per_frame_seconds)),
            compile_seconds=stream.compile_seconds,
            prefill_seconds=stream.prefill_seconds,
            cache=cache_split(stream.cache),
        )


_START = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - _START:7.1f}s] {message}", flush=True)


def parse_frames(text: str, window: int) -> list[int]:
    """The frames N of --frames ("100,1000"); each needs a history of N - window // 2 >= 1."""
    frames = [int(f) for f in text.split(",") if f.strip()]
    if not frames or min(frames) - window // 2 < 1:
        raise SystemExit(
            f"--frames {text!r}: each N needs a history of N - {window // 2} >= 1 frame(s) "
            f"before its {window}-frame window"
        )
    return frames


def add_ratios(rows: list[dict], lengths: list[int]) -> None:
    """row["vs_lssvwm"]: the row's figures over LSSVWM's (same run)."""
    keys = ["params", "train_step_seconds", "train_temp_bytes", "train_flops"]
    per_frame = ("seconds_per_frame", "prefill_seconds", "cache_bytes")
    keys += [f"{what}_at_{f}" for f in lengths for what in per_frame]
    reference = next(row for row in rows if row["model"] == REFERENCE)
    for row in rows:
        row["vs_lssvwm"] = {
            key: round(row[key] / reference[key], 3)
            for key in keys
            if row.get(key) is not None and reference.get(key)
        }


def markdown(record: dict) -> str:
    lengths = record["frames"]

    def mib(value):
        return "-" if value is None else f"{value / MIB:.2f}"

    head = ["model", "layers", "params", "train step (s)", "x LSSVWM", "temp (MiB)", "GFLOP"]
    for f in lengths:
        head += [f"s/frame @{f}", "x LSSVWM", f"prefill {f - record['window'] // 2} (s)"]
        head += [f"cache @{f} MiB: total / SSM / KV / store"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in record["rows"]:
        ratio = row["vs_lssvwm"]
        flops = row["train_flops"]
        cells = [
            row["model"],
            str(row["layers"]),
            f"{row['params']:,}",
            f"{row['train_step_seconds']:.3f}",
            f"{ratio.get('train_step_seconds', float('nan')):.2f}",
            mib(row["train_temp_bytes"]),
            "-" if flops is None else f"{flops / 1e9:.1f}",
        ]
        for f in lengths:
            cache = row[f"cache_split_at_{f}"]
            cells += [
                f"{row[f'seconds_per_frame_at_{f}']:.4f}",
                f"{ratio.get(f'seconds_per_frame_at_{f}', float('nan')):.2f}",
                f"{row[f'prefill_seconds_at_{f}']:.2f}",
                " / ".join(mib(cache[part]) for part in ("total", "ssm", "kv", "store")),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    env = record["environment"]
    window = record["window"]
    return (
        f"# maze3d family benchmark\n\n    {record['command']}\n\n"
        f"Commit {record['commit']['commit'][:10]}{' (dirty)' if record['commit']['dirty'] else ''}"
        f", {env['backend']} ({env['machine']}, {env['cpu_count']} cores, load "
        f"{env['load_average']:.1f}), JAX {env['jax']}, {record['reps']} train-step and "
        f"{record['rollout_reps']} window repetitions, wall {record['wall_seconds'] / 60:.1f} "
        f"min. s/frame @N: the median seconds per frame of {window} frames generated (batch 1, "
        f"random weights) after a history of N - {window // 2} frames prefilled in parallel "
        f"(frames N{1 - window // 2:+d} .. N{window - window // 2:+d}); prefill: its seconds; "
        f"cache: after the window.\n\n" + "\n".join(lines) + "\n"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(FAMILY), help="family members (FAMILY)")
    parser.add_argument("--frames", default=FRAMES, help="frames N measured (comma-separated)")
    parser.add_argument("--window", type=int, default=WINDOW, help="frames generated per N")
    parser.add_argument("--reps", type=int, default=5, help="train-step repetitions")
    parser.add_argument("--rollout-reps", type=int, default=1, help="windows per N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="experiments/bench_family/results.json")
    args = parser.parse_args()
    names = args.models.split(",")
    names = names if REFERENCE in names else [REFERENCE, *names]  # the ratios' reference
    if args.window < 1:
        raise SystemExit(f"--window must be >= 1, got {args.window}")
    lengths = parse_frames(args.frames, args.window)
    members = []
    for name in names:
        log(f"{name}: building and compiling the train step")
        members.append(Member(name, args.seed))
        log(f"{name}: {members[-1].row}")

    log(f"train steps: {args.reps} interleaved repetitions")
    calls = {member.name: member.train_call for member in members}
    for name, seconds in interleaved_medians(calls, args.reps).items():
        members[names.index(name)].row["train_step_seconds"] = seconds
        log(f"{name}: train step {seconds:.3f} s")

    rollouts = {(m.name, f): [] for m in members for f in lengths}
    for rep in range(args.rollout_reps):
        for member in members:
            for frames in lengths:
                result = member.frames_at(frames, args.window, rep)
                rollouts[member.name, frames].append(result)
                log(
                    f"rep {rep + 1}/{args.rollout_reps} {member.name} at frame {frames}: "
                    f"{1e3 * result['seconds']:.1f} ms/frame, prefill "
                    f"{result['prefill_seconds']:.2f} s, cache "
                    f"{result['cache']['total'] / MIB:.2f} MiB"
                )
    for member in members:
        for frames in lengths:
            results = rollouts[member.name, frames]
            member.row[f"seconds_per_frame_at_{frames}"] = float(
                np.median([r["seconds"] for r in results])
            )
            member.row[f"cache_bytes_at_{frames}"] = results[-1]["cache"]["total"]
            member.row[f"cache_split_at_{frames}"] = results[-1]["cache"]
            member.row[f"prefill_seconds_at_{frames}"] = float(
                np.median([r["prefill_seconds"] for r in results])
            )
            member.row[f"prefill_compile_seconds_at_{frames}"] = results[0][
                "prefill_compile_seconds"
            ]
            member.row[f"rollout_compile_seconds_at_{frames}"] = results[0]["compile_seconds"]

    rows = [member.row for member in members]
    add_ratios(rows, lengths)
    record = dict(
        environment=environment_record(),
        command=" ".join(["python -m experiments.bench_family.bench_family", *sys.argv[1:]]),
        commit=git_commit(),
        wall_seconds=round(time.perf_counter() - _START, 1),
        reps=args.reps,
        rollout_reps=args.rollout_reps,
        rollout_batch=1,
        window=args.window,
        frames=lengths,
        history_frames={str(f): f - args.window // 2 for f in lengths},
        rows=rows,
    )
    out = pathlib.Path(args.out)
    out.write_text(json.dumps(record, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(record))
    log(f"wrote {out} and {out.with_suffix('.md')}")
    print(markdown(record))


if __name__ == "__main__":
    main()
