"""Benchmark: chunked SSD vs the sequential reference vs mamba2-jax, and the Mamba-2 mixers.

All timings of one table are taken in one process, interleaved (each repetition runs every
candidate once), and reported as medians and as ratios, because shared machines are noisy.
Also measures a float32 matmul peak in the same run, to express achieved GFLOP/s as a fraction.

    python -m experiments.bench_ssd.bench_ssd --out experiments/bench_ssd/results.json
    python -m experiments.bench_ssd.bench_ssd --quick      # small lengths, for a smoke test

Needs `pip install -e '.[bench]'` for the mamba2-jax comparison (skipped with a note otherwise).
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp

from experiments.benchmarking import environment_record, interleaved_medians
from lssvwm.ssm import ssd, ssd_sequential

try:  # the peer implementation is an optional extra
    import mamba2_jax
except ImportError:  # pragma: no cover - depends on the environment
    mamba2_jax = None


def matmul_peak_gflops(size: int = 2048, reps: int = 5) -> float:
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    matmul = jax.jit(lambda m: m @ m)
    seconds = interleaved_medians({"mm": lambda: matmul(a)}, reps)["mm"]
    return 2 * size**3 / seconds / 1e9


def ssd_inputs(batch, length, heads, head_dim, state, groups=1, seed=0):
    keys = jax.random.split(jax.random.key(seed), 5)
    x = jax.random.normal(keys[0], (batch, length, heads, head_dim))
    dt = jax.nn.softplus(jax.random.normal(keys[1], (batch, length, heads)) - 2.0)
    A = -jnp.exp(jax.random.uniform(keys[2], (heads,), minval=0.0, maxval=2.7))
    B = jax.random.normal(keys[3], (batch, length, groups, state))
    C = jax.random.normal(keys[4], (batch, length, groups, state))
    return x, dt, A, B, C


def chunked_flops(batch, length, heads, head_dim, state, groups, chunk):
    """Matmul FLOPs of the chunked algorithm (C.B, weights @ x, B^T @ x, C @ S)."""
    per_token = chunk * state * groups + chunk * heads * head_dim + 2 * heads * head_dim * state
    return 2 * batch * length * per_token


def forward_and_grad(fn):
    """Jitted forward, and forward+backward of sum(y * w) w.r.t. every input."""

    def loss(*args):
        y, final = fn(*args)
        return jnp.sum(y) + jnp.sum(final)

    return jax.jit(fn), jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3, 4)))


def bench_scan_vs_reference(lengths, reps, chunk_sizes, peak):
    """Ours (each schedule, each chunk size) against the sequential reference."""
    batch, heads, head_dim, state = 2, 8, 64, 64
    rows = []
    for length in lengths:
        args = ssd_inputs(batch, length, heads, head_dim, state)
        fns = {"sequential": forward_and_grad(ssd_sequential)}
        for schedule in ("chunked_loop", "chunked_parallel"):
            for q in chunk_sizes:
                fn = lambda *a, q=q, s=schedule: ssd(*a, chunk_size=q, method=s)
                fns[f"{schedule}_q{q}"] = forward_and_grad(fn)
        for mode, index in (("fwd", 0), ("fwd+bwd", 1)):
            medians = interleaved_medians(
                {name: (lambda f=pair[index], a=args: f(*a)) for name, pair in fns.items()}, reps
            )
            base = medians["sequential"]
            for name, seconds in medians.items():
                q = int(name.rsplit("_q", 1)[1]) if "_q" in name else None
                row = dict(
                    table="scan_vs_reference",
                    length=length,
                    mode=mode,
                    method=name,
                    ms=seconds * 1e3,
                    speedup_vs_sequential=base / seconds,
                )
                if q is not None and mode == "fwd":
                    gflops = chunked_flops(batch, length, heads, head_dim, state, 1, q) / 1e9
                    row["gflop_per_s"] = gflops / seconds
                    row["fraction_of_matmul_peak"] = gflops / seconds / peak
                rows.append(row)
                print(json.dumps(row))
    return rows


def bench_model_shapes(lengths, reps, tokens=8192):
    """Short sequences with a large batch, as block-wise scans produce (sets ssd's AUTO rule)."""
    heads, head_dim, state = 4, 64, 64
    rows = []
    for length in lengths:
        batch = max(1, tokens // length)
        args = ssd_inputs(batch, length, heads, head_dim, state)
        fns = {"sequential": jax.jit(ssd_sequential)}
        for q in (16, 32, 64):
            if q <= max(length, 16):
                fns[f"chunked_loop_q{q}"] = jax.jit(
                    lambda *a, q=q: ssd(*a, chunk_size=q, method="chunked_loop")
                )
                fns[f"chunked_parallel_q{q}"] = jax.jit(
                    lambda *a, q=q: ssd(*a, chunk_size=q, method="chunked_parallel")
                )
        medians = interleaved_medians(
            {name: (lambda f=f, a=args: f(*a)) for name, f in fns.items()}, reps
        )
        for name, seconds in medians.items():
            row = dict(
                table="model_shapes",
                length=length,
                batch=batch,
                mode="fwd",
                method=name,
                ms=seconds * 1e3,
                speedup_vs_sequential=medians["sequential"] / seconds,
            )
            rows.append(row)
            print(json.dumps(row))
    return rows


def bench_against_mamba2_jax(lengths, reps, our_chunk, their_chunks):
    """Our `ssd` against mamba2-jax's `ssd_forward` at identical shapes."""
    batch, d_model, expand, head_dim, state = 4, 256, 2, 64, 64
    heads = d_model * expand // head_dim
    rows = []
    for length in lengths:
        x, dt, A, B, C = ssd_inputs(batch, length, heads, head_dim, state)
        zeros_h = jnp.zeros((heads,))
        # mamba2-jax applies softplus(dt + bias) itself and takes per-head B, C.
        raw_dt = jnp.log(jnp.expm1(dt))
        B_heads = jnp.broadcast_to(B, (batch, length, heads, state))
        C_heads = jnp.broadcast_to(C, (batch, length, heads, state))

        def theirs(x, raw_dt, A, B_heads, C_heads, q, zeros_h=zeros_h):
            y, final = mamba2_jax.ssd_forward(
                x,
                raw_dt,
                A,
                B_heads,
                C_heads,
                q,
                zeros_h,
                zeros_h,
                0.0,
                float("inf"),
                return_final_states=True,
            )
            return y, final

        fns = {"ours": forward_and_grad(lambda *a: ssd(*a, chunk_size=our_chunk))}
        for q in their_chunks:
            fns[f"mamba2_jax_q{q}"] = forward_and_grad(lambda *a, q=q: theirs(*a, q))
        inputs = {
            "ours": (x, dt, A, B, C),
            **{name: (x, raw_dt, A, B_heads, C_heads) for name in fns if name != "ours"},
        }
        for mode, index in (("fwd", 0), ("fwd+bwd", 1)):
            medians = interleaved_medians(
                {n: (lambda f=p[index], a=inputs[n]: f(*a)) for n, p in fns.items()}, reps
            )
            best_theirs = min(v for k, v in medians.items() if k != "ours")
            for name, seconds in medians.items():
                row = dict(
                    table="ssd_vs_mamba2_jax",
                    length=length,
                    mode=mode,
                    method=name,
                    ms=seconds * 1e3,
                    ours_speedup_vs_their_best=best_theirs / medians["ours"],
                )
                rows.append(row)
                print(json.dumps(row))
    return rows


def bench_mixers(lengths, reps):
    """Our Mamba-2 mixer against mamba2-jax's `Mamba2Mixer` at identical sizes."""
    from flax import nnx

    from lssvwm.nn.mamba2 import Mamba2Mixer

    batch, d_model, expand, head_dim, state = 4, 256, 2, 64, 64
    ours = Mamba2Mixer(d_model, d_state=state, head_dim=head_dim, expand=expand, rngs=nnx.Rngs(0))
    theirs = mamba2_jax.Mamba2Mixer(
        mamba2_jax.Mamba2Config(
            hidden_size=d_model,
            state_size=state,
            head_dim=head_dim,
            expand=expand,
            chunk_size=256,
        ),
        layer_idx=0,
        rngs=nnx.Rngs(0),
    )
    rows = []
    for length in lengths:
        x = jax.random.normal(jax.random.key(1), (batch, length, d_model))
        fns = {}
        for name, module, out in (
            ("ours", ours, lambda o: o[0]),
            ("mamba2_jax", theirs, lambda o: o[0]),
        ):
            graphdef, params = nnx.split(module)

            def apply(params, x, graphdef=graphdef, out=out):
                return out(nnx.merge(graphdef, params)(x))

            def loss(params, x, apply=apply):
                return jnp.sum(apply(params, x) ** 2)

            fwd = jax.jit(apply)
            bwd = jax.jit(jax.grad(loss, argnums=(0, 1)))
            fns[name] = (
                lambda f=fwd, p=params, x=x: f(p, x),
                lambda f=bwd, p=params, x=x: f(p, x),
            )
        for mode, index in (("fwd", 0), ("fwd+bwd", 1)):
            medians = interleaved_medians({n: pair[index] for n, pair in fns.items()}, reps)
            for name, seconds in medians.items():
                row = dict(
                    table="mixer_vs_mamba2_jax",
                    length=length,
                    mode=mode,
                    method=name,
                    ms=seconds * 1e3,
                    ours_speedup=medians["mamba2_jax"] / medians["ours"],
                )
                rows.append(row)
                print(json.dumps(row))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="experiments/bench_ssd/results.json")
    parser.add_argument("--quick", action="store_true", help="small lengths, few repetitions")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--tables", default="scan,shapes,peer,mixer")
    parser.add_argument("--our_chunk", type=int, default=64)
    args = parser.parse_args()
    tables = args.tables.split(",")
    reps = 2 if args.quick else args.reps
    peak = matmul_peak_gflops(512 if args.quick else 2048)
    print(f"float32 matmul peak: {peak:.1f} GFLOP/s")
    rows = []
    if "scan" in tables:
        lengths = [256, 512] if args.quick else [256, 1024, 4096, 8192]
        rows += bench_scan_vs_reference(lengths, reps, [16, 32, 64, 128], peak)
    if "shapes" in tables:
        rows += bench_model_shapes([2, 4, 8, 16, 32, 64, 128, 512], reps)
    peer_lengths = [256] if args.quick else [1024, 4096, 8192]
    if mamba2_jax is None and ("peer" in tables or "mixer" in tables):
        print("mamba2-jax is not installed (pip install -e '.[bench]'): peer tables skipped")
    else:
        if "peer" in tables:
            rows += bench_against_mamba2_jax(peer_lengths, reps, args.our_chunk, [64, 256])
        if "mixer" in tables:
            rows += bench_mixers(peer_lengths, reps)
    record = dict(**environment_record(), matmul_peak_gflops=peak, rows=rows)
    with open(args.out, "w") as f:
        json.dump(record, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
