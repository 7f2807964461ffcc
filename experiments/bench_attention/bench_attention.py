"""Benchmark: blocked frame-local attention vs one dense-masked attention over the whole sequence.

Kernel level (q, k, v given, no projections), jitted, forward and forward+backward; then the
layer's streaming step (+ commit) after a growing number of frames, sliding vs full causal.
Times are medians of interleaved repetitions (every candidate runs once per repetition; shared
machines are noisy); memory is XLA's compiled temporary-buffer size
(`memory_analysis().temp_size_in_bytes`), i.e. the working memory beyond inputs and outputs.

    python -m experiments.bench_attention.bench_attention \
        --out experiments/bench_attention/results.json
    python -m experiments.bench_attention.bench_attention --quick   # one small shape, smoke test
"""

from __future__ import annotations

import argparse
import json
import platform

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments.benchmarking import interleaved_medians
from lssvwm.nn.attention import FrameLocalAttention
from lssvwm.nn.attention_kernels import (
    dense_masked_attention,
    full_causal_attention,
    windowed_attention,
)
from lssvwm.nn.attention_window import FrameWindow

ROPE_BASE = 10_000.0


def attention_fns(window: FrameWindow, query_blocks):
    """name -> attention(q, k, v) for the blocked kernel at each query block and the dense one."""
    fns = {}
    for block in query_blocks:
        if window.is_full:
            fns[f"blocked_Q{block}"] = lambda q, k, v, block=block: full_causal_attention(
                q, k, v, rope_base=ROPE_BASE, query_block=block
            )
        else:
            fns[f"blocked_Q{block}"] = lambda q, k, v, block=block: windowed_attention(
                q, k, v, window, rope_base=ROPE_BASE, query_block=block
            )
    fns["dense_mask"] = lambda q, k, v: dense_masked_attention(q, k, v, window, rope_base=ROPE_BASE)
    return fns


def measure(window: FrameWindow, shape, query_blocks, reps: int) -> dict:
    b, t, s, h, p = shape
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.standard_normal(shape), jnp.float32) for _ in range(3))
    candidates, memory = {}, {}
    for name, fn in attention_fns(window, query_blocks).items():
        forward = jax.jit(fn)
        backward = jax.jit(jax.grad(lambda q, k, v, fn=fn: jnp.sum(fn(q, k, v) ** 2), (0, 1, 2)))
        for mode, compiled_fn in (("fwd", forward), ("fwd_bwd", backward)):
            compiled = compiled_fn.lower(q, k, v).compile()
            analysis = compiled.memory_analysis()
            memory[f"{name}/{mode}"] = None if analysis is None else analysis.temp_size_in_bytes
            candidates[f"{name}/{mode}"] = lambda c=compiled: c(q, k, v)
    seconds = interleaved_medians(candidates, reps)
    # Correctness guard: every blocked variant agrees with the dense one on these inputs.
    dense = attention_fns(window, [])["dense_mask"](q, k, v)
    max_err = {
        name: float(jnp.max(jnp.abs(jax.jit(fn)(q, k, v) - dense)))
        for name, fn in attention_fns(window, query_blocks).items()
    }
    rows = []
    for key in candidates:
        name, mode = key.split("/")
        rows.append(
            {
                "candidate": name,
                "mode": mode,
                "seconds": seconds[key],
                "temp_bytes": memory[key],
                "ratio_to_dense": seconds[key] / seconds[f"dense_mask/{mode}"],
                "max_abs_diff_vs_dense": max_err[name],
            }
        )
    return {
        "window": {"frames": window.frames, "chunk": window.chunk},
        "shape_btshp": list(shape),
        "rows": rows,
    }


def measure_streaming(window: FrameWindow, shape, frames_seen, reps: int) -> list[dict]:
    """Per-unit time of a jitted layer step + commit, and cache bytes, after `frames_seen` frames.

    The cache is filled by `prefill` (the parallel pass), then one unit is stepped and committed.
    """
    b, _, s, h, p = shape
    layer = FrameLocalAttention(
        h * p,
        h,
        rngs=nnx.Rngs(0),
        window=window.frames,
        chunk_size=window.chunk if window.is_chunked else None,
    )
    graphdef, state = nnx.split(layer)

    @jax.jit
    def step_and_commit(state, x, cache):
        module = nnx.merge(graphdef, state)
        y, kv = module.step(x, cache)
        return y, module.commit(cache, kv)

    prefill = jax.jit(lambda state, x: nnx.merge(graphdef, state).prefill(x))
    rng = np.random.default_rng(0)
    rows = []
    for seen in frames_seen:
        context = jnp.asarray(rng.standard_normal((b, seen, s, h * p)), jnp.float32)
        _, cache = prefill(state, context)
        cache = layer.reserve(cache, layer.unit)  # growing cache: room for the stepped unit
        x = jnp.asarray(rng.standard_normal((b, layer.unit, s, h * p)), jnp.float32)
        seconds = interleaved_medians(
            {"step": lambda x=x, c=cache: step_and_commit(state, x, c)}, reps
        )
        rows.append(
            {"frames_seen": seen, "seconds_per_unit": seconds["step"], "cache_bytes": cache.nbytes}
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="write results JSON here")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

    if args.quick:
        cases = [(FrameWindow(10), (1, 16, 4, 2, 16), [10])]
    else:
        # b=2, t=64 frames, s=16 tokens (4x4 patches), d=128 as 4 heads x 32, k=10.
        shape = (2, 64, 16, 4, 32)
        cases = [
            (FrameWindow(10), shape, [2, 5, 10, 20]),
            (FrameWindow(10, chunk=5), (2, 60, 16, 4, 32), [5, 10, 20]),  # whole 5-frame chunks
            (FrameWindow(None), shape, [8, 16, 32]),
            (FrameWindow(10), (2, 128, 16, 4, 32), [5, 10]),
        ]
    results = {
        "device": str(jax.devices()[0]),
        "platform": platform.platform(),
        "jax": jax.__version__,
        "reps": args.reps,
        "cases": [],
    }
    for window, shape, blocks in cases:
        case = measure(window, shape, blocks, args.reps)
        results["cases"].append(case)
        print(f"\nwindow={case['window']} shape [b,t,s,h,p]={shape}")
        print(
            f"{'candidate':<14}{'mode':<9}{'ms':>9}{'x dense':>9}{'temp MiB':>10}{'max|diff|':>11}"
        )
        for row in case["rows"]:
            temp = "n/a" if row["temp_bytes"] is None else f"{row['temp_bytes'] / 2**20:.2f}"
            print(
                f"{row['candidate']:<14}{row['mode']:<9}{row['seconds'] * 1e3:>9.2f}"
                f"{row['ratio_to_dense']:>9.2f}{temp:>10}{row['max_abs_diff_vs_dense']:>11.1e}"
            )
    streaming = (
        [(FrameWindow(10), [20])]
        if args.quick
        else [(FrameWindow(10), [20, 80, 320]), (FrameWindow(None), [20, 80, 320])]
    )
    results["streaming"] = []
    for window, seen in streaming:
        shape = cases[0][1]
        rows = measure_streaming(window, shape, seen, args.reps)
        results["streaming"].append(
            {"window": {"frames": window.frames, "chunk": window.chunk}, "rows": rows}
        )
        print(f"\nstreaming step+commit, window={window.frames}, [b,s,h,p]={shape[:1] + shape[2:]}")
        for row in rows:
            print(
                f"after {row['frames_seen']:>4} frames: {row['seconds_per_unit'] * 1e3:8.2f} ms"
                f"  cache {row['cache_bytes'] / 2**20:8.2f} MiB"
            )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
