"""Benchmark: parameter counts, one forward pass and one streaming step per mixer.

For every mixer of a network config (default configs/network_cpu.py) this reports
  - the parameter count at the config's depth, and the depth that matches LSSVWM's count;
  - one parallel forward pass over a training window (batch x max_frames frames);
  - one streaming step (one unit of frames) after prefilling short and long contexts, and the
    cache bytes after each context: flat for the SSM models, growing for full-context attention.
Timings are medians of jitted calls, interleaved across mixers and calls per repetition (shared
machines are noisy). Cache bytes are those right after the prefill; a growing (full-context)
cache then reserves room for the stepped frame before the jitted step. Inputs are random episode
fields (experiments/benchmarking.py) made into each mixer's inputs by `lssvwm.models.inputs`:
RGB-D frames and the camera packed into the actions for `spatial_memory`.

    python -m experiments.bench_network.bench_network
    python -m experiments.bench_network.bench_network --contexts 8,128 --reps 5 \
        --out experiments/bench_network/results.json
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from experiments.benchmarking import (
    environment_record,
    interleaved_medians,
    random_episode_fields,
)
from lssvwm.config_loading import load_config
from lssvwm.models import (
    MIXERS,
    WorldModel,
    WorldModelConfig,
    depth_for_parameter_budget,
    inputs,
    parameter_report,
)


def random_inputs(config: WorldModelConfig, batch: int, frames: int, seed: int = 0):
    """(frames, noise levels, actions) of random episode fields, as the model takes them: RGB-D
    frames and the camera packed into the actions for the spatial-memory mixer."""
    fields = random_episode_fields(config, batch, frames, seed)
    noise = np.random.default_rng(seed).uniform(size=(batch, frames))
    return (
        jnp.asarray(inputs.model_frames(fields, config), jnp.float32),
        jnp.asarray(noise, jnp.float32),
        jnp.asarray(inputs.model_actions(fields, config)),
    )


def prepare_mixer(config: WorldModelConfig, batch: int, contexts, row: dict) -> dict:
    """Builds the model, prefills each context; returns the calls to time and fills `row`."""
    model = nnx.jit(lambda: WorldModel(config, rngs=nnx.Rngs(0)))()
    graphdef, state = nnx.split(model)
    call = jax.jit(lambda s, *a: nnx.merge(graphdef, s)(*a))
    prefill = jax.jit(lambda s, *a: nnx.merge(graphdef, s).prefill(*a))
    step = jax.jit(lambda s, *a: nnx.merge(graphdef, s).step(*a))
    window = config.max_frames or 32
    video, noise, actions = random_inputs(config, batch, max(window, max(contexts) + config.unit))
    clip = lambda a, n: a[:, :n]
    calls = {
        "forward": lambda: call(
            state, clip(video, window), clip(noise, window), clip(actions, window)
        )
    }
    for context in contexts:
        _, cache = prefill(
            state, clip(video, context), clip(noise, context), clip(actions, context)
        )
        row[f"cache_bytes_after_{context}"] = cache.nbytes
        cache = model.reserve(cache, config.unit)  # growing caches: room for the stepped frame
        unit = lambda a, c=context: a[:, c : c + config.unit]
        calls[f"step_after_{context}"] = lambda c=cache, u=unit: step(
            state, u(video), u(noise), u(actions), c
        )
    return calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/network_cpu.py")
    parser.add_argument("--mixers", default=",".join(MIXERS))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--contexts", default="8,128")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", default="experiments/bench_network/results.json")
    args = parser.parse_args()
    contexts = [int(c) for c in args.contexts.split(",")]
    base = WorldModelConfig.from_mapping(load_config(args.config).model)
    lssvwm_params = parameter_report(base.replace(mixer="lssvwm"))["total"]
    rows, calls = [], {}
    for mixer in args.mixers.split(","):
        spec = f"{args.config}:mixer={mixer}"
        config = WorldModelConfig.from_mapping(load_config(spec).model)
        report = parameter_report(config)
        row = dict(
            config=spec,
            mixer=mixer,
            unit_frames=config.unit,
            params=report["total"],
            params_per_block=report["per_block"],
            depth=config.depth,
            depth_matching_lssvwm=depth_for_parameter_budget(config, lssvwm_params),
        )
        for name, fn in prepare_mixer(config, args.batch, contexts, row).items():
            calls[(mixer, name)] = fn
        rows.append(row)
    medians = interleaved_medians(calls, args.reps)
    for row in rows:
        for (mixer, name), seconds in medians.items():
            if mixer == row["mixer"]:
                row[f"{name}_ms"] = round(1e3 * seconds, 2)
        print(json.dumps(row), flush=True)
    record = dict(**environment_record(), batch=args.batch, rows=rows)
    with open(args.out, "w") as f:
        json.dump(record, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
