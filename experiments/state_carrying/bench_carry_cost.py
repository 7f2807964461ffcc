"""Benchmark: what state carrying costs per train step, by policy (CPU, random data).

The carried default ("clean") runs one extra gradient-free parallel pass over the clean window to
build the next window's state; "noisy" carries the training pass's own final state (no extra
pass); "plain" is the trainer without a carry. Also state passing and noisy initial states (the
policy's reset work only). Every policy's jitted train step is timed on the same random batch,
interleaved per repetition (shared machines are noisy), median seconds per step; beside it the
compiled step's working memory (XLA's temp buffers beyond inputs and outputs) and the bytes of
the carried state it keeps between steps.

    python -m experiments.state_carrying.bench_carry_cost
    python -m experiments.state_carrying.bench_carry_cost --config configs/quickstart.py \
        --reps 10 --out experiments/state_carrying/results_cost_quickstart.json
"""

from __future__ import annotations

import argparse
import json

import jax
import numpy as np

from experiments.benchmarking import environment_record, interleaved_medians
from lssvwm.config_loading import load_config
from lssvwm.models import WorldModelConfig, count_parameters
from lssvwm.run_spec import RunSpec
from lssvwm.training.build import build

POLICIES = {
    "plain": None,
    "carried_clean": dict(carry=True, carry_source="clean"),
    "carried_noisy": dict(carry=True, carry_source="noisy"),
    "state_passing": dict(initial="passing"),
    "noisy_init": dict(initial="noise"),
}


def random_batch(model_config: WorldModelConfig, batch: int, frames: int, seed: int = 0):
    """A stream batch of uint8 frames and actions, continuing its slots' episodes."""
    rng = np.random.default_rng(seed)
    h, w = model_config.image_size
    if model_config.action_mode == "discrete":
        actions = rng.integers(0, model_config.num_actions, (batch, frames)).astype(np.int32)
    else:
        actions = rng.uniform(0, model_config.pose_scale, (batch, frames, 3)).astype(np.float32)
    return {
        "frames": rng.integers(0, 256, (batch, frames, h, w, model_config.channels), np.uint8),
        "actions": actions,
        "episode_start": np.zeros((batch,), bool),
        "episode_id": np.arange(batch, dtype=np.int32),
        "start_frame": np.full((batch,), frames, np.int32),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/maze3d_lssvwm.py")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--reps", type=int, default=8)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    config = load_config(args.config).to_dict()
    config["training"]["steps"] = 1000  # the learning-rate schedule's length
    config["optimizer"]["ema_decay"] = 0.99
    model_config = WorldModelConfig.from_mapping(config["model"])
    batch_size, frames = config["training"]["batch_size"], config["training"]["window_length"]
    host_batch = random_batch(model_config, batch_size, frames)

    candidates, temp_bytes, carry_bytes = {}, {}, {}
    for name in args.policies.split(","):
        # The trainer's build of this policy: same state, carry, shardings and step.
        spec = RunSpec.from_config({**config, "state": POLICIES[name] or {}}, check_data=False)
        built = build(spec)
        step = built.make_train_step()
        batch = built.parallel.place_batch(host_batch)
        state, carry = built.init_state(), built.init_carry(batch_size)
        if carry is not None:
            carry_bytes[name] = sum(x.nbytes for x in jax.tree.leaves(carry))
        analysis = step.lower(state, carry, batch).compile().memory_analysis()
        temp_bytes[name] = None if analysis is None else int(analysis.temp_size_in_bytes)
        holder = {"state": state, "carry": carry}

        def run(step=step, holder=holder, batch=batch):
            holder["state"], holder["carry"], metrics = step(
                holder["state"], holder["carry"], batch
            )
            return metrics["loss"]

        candidates[name] = run
    seconds = interleaved_medians(candidates, args.reps)
    base = seconds.get("plain")
    record = {
        "config": args.config,
        "mixer": model_config.mixer,
        "num_params": int(count_parameters(model_config)),
        "batch": batch_size,
        "window_frames": frames,
        "tokens_per_frame": model_config.tokens_per_frame,
        "reps": args.reps,
        "seconds_per_step": {k: round(v, 4) for k, v in seconds.items()},
        "relative_to_plain": (
            {k: round(v / base, 3) for k, v in seconds.items()} if base else None
        ),
        "compiled_temp_bytes": temp_bytes,
        "carry_bytes": carry_bytes,
        "environment": environment_record(),
    }
    print(json.dumps(record, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(record, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
