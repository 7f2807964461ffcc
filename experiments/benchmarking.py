"""Shared helpers of the benchmarks in experiments/: side-by-side timing and the run record."""

from __future__ import annotations

import os
import platform
import time

import jax
import numpy as np


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


def environment_record() -> dict:
    """What a result file needs to say about where it was measured."""
    return dict(
        jax=jax.__version__,
        backend=jax.default_backend(),
        cpu_count=os.cpu_count(),
        load_average=os.getloadavg()[0],
        machine=platform.processor() or platform.machine(),
    )
