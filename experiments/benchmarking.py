"""Shared helpers of the benchmarks in experiments/: side-by-side timing and the run record."""

from __future__ import annotations

import os
import platform
import time

import jax
import numpy as np

from lssvwm.data import maze_render


def interleaved_medians(candidates: dict, reps: int) -> dict:
    """Median seconds per candidate (a zero-argument callable returning JAX arrays).

    Every candidate is called once first (compiling it); then each repetition calls every
    candidate once, so a change in machine load hits all candidates alike and their ratios stay
    meaningful on a shared, noisy machine.
    """
    for fn in candidates.values():
        jax.block_until_ready(fn())
    times = {name: [] for name in candidates}
    for _ in range(reps):
        for name, fn in candidates.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def compiled_costs(compiled) -> dict:
    """XLA's figures of a compiled function: its temporary / argument / output / alias bytes
    (`memory_analysis`, None where the backend gives none) and FLOPs (`cost_analysis`; loop
    bodies are counted once, so scans and scanned layers are undercounted)."""
    memory = compiled.memory_analysis()
    costs = {}
    for what in ("temp", "argument", "output", "alias"):
        size = getattr(memory, f"{what}_size_in_bytes", None) if memory is not None else None
        costs[f"{what}_bytes"] = None if size is None else int(size)
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) and cost else cost
    flops = cost.get("flops") if isinstance(cost, dict) else None
    costs["flops"] = None if flops is None else float(flops)
    return costs


def environment_record() -> dict:
    """What a result file needs to say about where it was measured."""
    return dict(
        jax=jax.__version__,
        backend=jax.default_backend(),
        cpu_count=os.cpu_count(),
        load_average=os.getloadavg()[0],
        machine=platform.processor() or platform.machine(),
    )


def random_episode_fields(model_config, batch: int, frames: int, seed: int = 0) -> dict:
    """Random episode fields of a model's input shapes, in their ranges (what a maze3d episode
    stores): uint8 frames [b, t, H, W, 3], depth float32 [b, t, H, W] (metres), position float32
    [b, t, 3] (x, y, heading), actions int32 [b, t], camera_to_world [b, t, 4, 4] and intrinsics
    [b, 3, 3]. `lssvwm.models.inputs` (`model_frames`, `model_actions`) or
    `lssvwm.train.model_batch` turn them into any model's inputs, RGB-D and packed cameras
    included. Timings do not depend on the values."""
    rng = np.random.default_rng(seed)
    h, w = model_config.image_size
    camera = maze_render.Camera(height=h, width=w)
    side = max(model_config.pose_scale, 1.0)
    position = np.stack(
        [
            rng.uniform(0, side, (batch, frames)),
            rng.uniform(0, side, (batch, frames)),
            rng.uniform(-np.pi, np.pi, (batch, frames)),
        ],
        axis=-1,
    ).astype(np.float32)
    return dict(
        frames=rng.integers(0, 256, (batch, frames, h, w, 3), dtype=np.uint8),
        depth=rng.uniform(0.3, 8.0, (batch, frames, h, w)).astype(np.float32),
        position=position,
        actions=rng.integers(0, max(model_config.num_actions, 1), (batch, frames), np.int32),
        camera_to_world=np.stack(
            [maze_render.camera_to_world(p, camera.eye_height) for p in position]
        ),
        intrinsics=np.broadcast_to(camera.intrinsics(), (batch, 3, 3)).copy(),
    )
