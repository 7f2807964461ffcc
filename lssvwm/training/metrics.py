"""The metric writer of a training run (the progress line is `lssvwm.common.progress`), and the
host side of the non-finite guard.

    writer = MetricWriter(workdir)            # metrics.jsonl + TensorBoard events in workdir/tb
    writer.write(step, {"loss": 0.1, "steps_per_sec": 2.0})

    guard = NonfiniteGuard("skip", max_consecutive=10)
    guard.update(metrics, step)               # every step: device arithmetic, no host read
    skipped = guard.check(step, newest_checkpoint)   # logged/saved steps: one small host read

`metrics.jsonl` holds one JSON object per logged step (`step` plus the scalars), appended, so a
resumed run continues the same file (a resumed step that was logged before is logged again: the
later line wins for readers that key on step). TensorBoard files come from `tensorboardX`, a pure
Python writer: TensorFlow is not needed to write them (only to view them, with `tensorboard`).
In a multi-host run only process 0 writes: `MetricWriter(workdir, active=is_primary())`.
"""

from __future__ import annotations

import functools
import json
import math
import pathlib
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from tensorboardX import SummaryWriter

from lssvwm.common.errors import NonFiniteError
from lssvwm.training.train_step import NONFINITE_BITS


def _scalar(value) -> float:
    return float(np.asarray(value))


class MetricWriter:
    """Appends scalars to `workdir/metrics.jsonl` and to TensorBoard events under `workdir/tb`.

    `active=False` (the non-primary processes of a multi-host run) opens and writes nothing:
    `write` only returns the record."""

    def __init__(self, workdir: str | pathlib.Path, *, active: bool = True):
        workdir = pathlib.Path(workdir)
        self.jsonl_path = workdir / "metrics.jsonl"
        self.active = active
        if not active:
            return
        workdir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(self.jsonl_path, "a")  # noqa: SIM115 - closed in close()
        self._tb = SummaryWriter(logdir=str(workdir / "tb"))

    def write(self, step: int, scalars: Mapping[str, object]) -> dict[str, float]:
        """Writes one record; returns it as floats (non-finite values are kept as NaN/inf)."""
        record = {"step": int(step)}
        for name, value in scalars.items():
            record[name] = _scalar(value)
        if not self.active:
            return record
        # JSON has no NaN/inf: write them as strings so every line stays valid JSON.
        printable = {k: (v if math.isfinite(v) else str(v)) for k, v in record.items()}
        self._jsonl.write(json.dumps(printable) + "\n")
        self._jsonl.flush()
        for name, value in record.items():
            if name != "step":
                self._tb.add_scalar(name, value, global_step=int(step))
        self._tb.flush()
        return record

    def close(self) -> None:
        if not self.active:
            return
        self._jsonl.close()
        self._tb.close()


# ---- the non-finite guard, host side ---------------------------------------------------------

NONFINITE_MODES = ("skip", "stop")
_CHECKED = tuple(NONFINITE_BITS)  # loss, grad_norm, param_norm: the order of `*_values`


def _no_counts() -> dict[str, np.ndarray]:
    """The counters before any step (numpy: placed where the first step's metrics are)."""
    minus_one = np.asarray(-1, np.int32)
    values = np.zeros(len(_CHECKED), np.float32)
    return {
        "total": np.asarray(0, np.int32),
        "consecutive": np.asarray(0, np.int32),
        "first_step": minus_one,
        "first_flags": np.asarray(0, np.int32),
        "first_values": values,
        "limit_step": minus_one,
        "limit_flags": np.asarray(0, np.int32),
        "limit_values": values,
    }


@functools.partial(jax.jit, static_argnames="limit")
def _count(counts, metrics, step, *, limit: int):
    """The counters after the step `step` with these metrics: skipped steps in all, the current
    run of consecutive ones, and the first skipped step and the step the run reached `limit`,
    each with its `nonfinite` flags and checked values."""
    flags = metrics["nonfinite"]
    values = jnp.stack([jnp.asarray(metrics[name], jnp.float32) for name in _CHECKED])
    bad = flags != 0
    consecutive = jnp.where(bad, counts["consecutive"] + 1, 0)
    first = bad & (counts["first_step"] < 0)
    limit_now = (consecutive >= limit) & (counts["limit_step"] < 0)
    return {
        "total": counts["total"] + bad.astype(jnp.int32),
        "consecutive": consecutive,
        "first_step": jnp.where(first, step, counts["first_step"]),
        "first_flags": jnp.where(first, flags, counts["first_flags"]),
        "first_values": jnp.where(first, values, counts["first_values"]),
        "limit_step": jnp.where(limit_now, step, counts["limit_step"]),
        "limit_flags": jnp.where(limit_now, flags, counts["limit_flags"]),
        "limit_values": jnp.where(limit_now, values, counts["limit_values"]),
    }


def describe_nonfinite(flags: int, values) -> str:
    """The quantities a step's `nonfinite` bits name: "loss is nan, grad_norm is inf"."""
    parts = [
        f"{name} is {float(values[i])}"
        for i, name in enumerate(_CHECKED)
        if int(flags) & NONFINITE_BITS[name]
    ]
    return ", ".join(parts) or "a checked quantity is not finite"


def newest_checkpoint_clause(newest_checkpoint: int | None) -> str:
    """How to go on after a non-finite stop: the newest checkpoint (never a non-finite one)."""
    if newest_checkpoint is None:
        return "no checkpoint was saved yet"
    return f"the newest checkpoint is step {newest_checkpoint}"


class NonfiniteGuard:
    """Counts the train step's skipped (non-finite) steps and stops the run on them.

    The train step (lssvwm.training.train_step) already leaves the state unchanged at a
    non-finite step. `update` folds each step's `nonfinite` metric into device-side counters (a
    tiny jitted function, dispatched asynchronously: no host read per step); `check` reads them
    (one small host read: call it at logged and saved steps) and raises `NonFiniteError`, one
    line naming the step and the quantity, when the run must stop:

      mode "stop": at the first non-finite step;
      mode "skip": after `max_consecutive` non-finite steps in a row.

    So a stop comes at the first logged or saved step after the cause, never after a checkpoint
    of a later step. The counts are this process's (a resumed run counts afresh)."""

    def __init__(self, mode: str = "skip", max_consecutive: int = 10):
        if mode not in NONFINITE_MODES:
            raise ValueError(f"training.nonfinite must be one of {NONFINITE_MODES}, got {mode!r}")
        if max_consecutive < 1:
            raise ValueError(f"training.max_consecutive_nonfinite must be >= 1: {max_consecutive}")
        self.mode = mode
        self.max_consecutive = int(max_consecutive)
        self._counts = None
        self._warned = 0

    def update(self, metrics: Mapping[str, jax.Array], step: int) -> None:
        """Folds in the step numbered `step` (its metrics as the train step returned them)."""
        counts = _no_counts() if self._counts is None else self._counts
        checked = {name: metrics[name] for name in ("nonfinite", *_CHECKED)}
        self._counts = _count(counts, checked, step, limit=self.max_consecutive)

    def counts(self) -> dict:
        """The counters, read to the host."""
        counts = _no_counts() if self._counts is None else self._counts
        return {key: np.asarray(value) for key, value in jax.device_get(counts).items()}

    def check(self, step: int, newest_checkpoint: int | None, counts: dict | None = None) -> int:
        """The number of non-finite steps so far; raises NonFiniteError when the run must stop
        (see the class docstring). `newest_checkpoint` (None: none yet) goes into the message;
        `counts`: what `counts()` read just before (None: read them now)."""
        counts = self.counts() if counts is None else counts
        total, limit_step = int(counts["total"]), int(counts["limit_step"])
        saved = newest_checkpoint_clause(newest_checkpoint)
        if self.mode == "stop" and total:
            first = int(counts["first_step"])
            what = describe_nonfinite(counts["first_flags"], counts["first_values"])
            raise NonFiniteError(
                f"step {first}: {what} (training.nonfinite='stop'; noticed at step {step}, not "
                f"saved); {saved}"
            )
        if limit_step >= 0:
            what = describe_nonfinite(counts["limit_flags"], counts["limit_values"])
            start = limit_step - self.max_consecutive + 1
            raise NonFiniteError(
                f"steps {start}-{limit_step}: {self.max_consecutive} non-finite steps in a row, "
                f"all skipped (training.max_consecutive_nonfinite={self.max_consecutive}; step "
                f"{limit_step}: {what}); stopped at step {step}, not saved; {saved}"
            )
        if total > self._warned:
            what = describe_nonfinite(counts["first_flags"], counts["first_values"])
            logging.warning(
                "step %d: %d non-finite step(s) skipped so far (the first, step %d: %s)",
                step,
                total,
                int(counts["first_step"]),
                what,
            )
            self._warned = total
        return total
