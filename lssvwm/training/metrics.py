"""The metric writer of a training run (the progress line is `lssvwm.common.progress`), and the
host side of the non-finite guard.

    writer = MetricWriter(workdir, config=spec.resolved_config(), metric_names=("loss",))
    writer.write(step, {"loss": 0.1, "steps_per_sec": 2.0})   # metrics.jsonl + workdir/tb
    writer.write_movie(step, "samples", movie_THWC)

    guard = NonfiniteGuard("skip", max_consecutive=10)
    guard.update(metrics, step)               # every step: device arithmetic, no host read
    skipped = guard.check(step, newest_checkpoint)   # logged/saved steps: one small host read

`metrics.jsonl` holds one JSON object per logged step (`step` plus the scalars), appended, so a
resumed run continues the same file (a resumed step that was logged before is logged again: the
later line wins for readers that key on step).

TensorBoard (`tensorboard --logdir workdir/tb`, the `tensorboard` extra) shows the same scalars;
the run's `config` (JSON types) as text (tag `config/text_summary`) and as hyperparameters (the
HParams dashboard, with the scalars in `metric_names` as its metric columns), written at the start
of each event file; and sample movies (model | truth, an animated GIF in the Images dashboard).
The files come from `tensorboardX`, a pure Python writer: TensorFlow is not needed to write them.
Each start of a run that writes anything adds one event file, named after its time, host, process
and writer (two writers of one second never share a file), and a start that writes nothing (a
finished run re-read) adds none. Each `write*` reaches the file before it returns
(tensorboardX's SummaryWriter would hold events up to two minutes in a thread), so a live
TensorBoard, or a killed run, has them all.
In a multi-host run only process 0 writes: `MetricWriter(workdir, active=is_primary())`.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import pathlib
import time
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from tensorboardX import summary as tensorboard_summary
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event
from tensorboardX.proto.summary_pb2 import Summary

from lssvwm.common.errors import NonFiniteError
from lssvwm.common.video import gif_bytes
from lssvwm.training.train_step import NONFINITE_BITS


def _scalar(value) -> float:
    return float(np.asarray(value))


_writers = itertools.count()  # event files of one process and one second get distinct names


class MetricWriter:
    """Appends scalars to `workdir/metrics.jsonl` and writes TensorBoard events under
    `workdir/tb` (module docstring); the event file is opened at the first TensorBoard write.

    `config` (JSON types, e.g. `RunSpec.resolved_config()`) and `metric_names`: the text and
    hyperparameters each event file starts with (module docstring; None: none). `active=False`
    (the non-primary processes of a multi-host run) opens and writes nothing: `write` only
    returns the record."""

    def __init__(
        self,
        workdir: str | pathlib.Path,
        *,
        active: bool = True,
        config: Mapping[str, object] | None = None,
        metric_names: Sequence[str] = (),
    ):
        workdir = pathlib.Path(workdir)
        self.jsonl_path = workdir / "metrics.jsonl"
        self.tensorboard_dir = workdir / "tb"
        self.active = active
        self.config = config
        self.metric_names = tuple(metric_names)
        self._events = None
        if not active:
            return
        workdir.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(self.jsonl_path, "a")  # noqa: SIM115 - closed in close()

    def _add(self, step: int, *summaries: Summary) -> None:
        """Appends the summaries to the event file and flushes it (opened on first use)."""
        if self._events is None:
            self.tensorboard_dir.mkdir(parents=True, exist_ok=True)
            # tensorboardX names a file after the second and the host only: a second writer in
            # the same second would truncate the first one's file.
            suffix = f".{os.getpid()}.{next(_writers)}"
            self._events = EventsWriter(str(self.tensorboard_dir / "events"), suffix)
            if self.config is not None:
                summaries = (*config_summaries(self.config, self.metric_names), *summaries)
        for summary in summaries:
            self._events.write_event(Event(wall_time=time.time(), step=int(step), summary=summary))
        self._events.flush()

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
        self._add(
            step,
            *(tensorboard_summary.scalar(k, v) for k, v in record.items() if k != "step"),
        )
        return record

    def write_movie(self, step: int, tag: str, movie_THWC: np.ndarray, fps: float = 8.0) -> None:
        """A uint8 [T, H, W, 3] movie as an animated GIF image (the Images dashboard plays it)."""
        if not self.active:
            return
        _, height, width, channels = movie_THWC.shape
        image = Summary.Image(
            height=height,
            width=width,
            colorspace=channels,
            encoded_image_string=gif_bytes(movie_THWC, fps),
        )
        self._add(step, Summary(value=[Summary.Value(tag=tag, image=image)]))

    def close(self) -> None:
        if not self.active:
            return
        self._jsonl.close()
        if self._events is not None:
            self._events.close()
            self._events = None


def config_summaries(config: Mapping[str, object], metric_names: Sequence[str]) -> list[Summary]:
    """The config as the text `config/text_summary` (a markdown code block of its JSON) and as
    the HParams plugin's experiment and session start: one hyperparameter per dotted field, the
    scalars `metric_names` as its metrics."""
    text = json.dumps(config, indent=2, sort_keys=True)
    markdown = "\n".join("    " + line for line in text.splitlines())  # indented: a code block
    experiment, session_start, _ = tensorboard_summary.hparams(
        hyperparameters(config), {name: None for name in metric_names}
    )
    return [tensorboard_summary.text("config", markdown), experiment, session_start]


def hyperparameters(config: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """The config's fields as hyperparameters: dotted keys, values a bool, number or string
    (lists as their JSON text); None (unset) fields are left out."""
    flat = {}
    for name, value in config.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(hyperparameters(value, key + "."))
        elif isinstance(value, bool | int | float | str):
            flat[key] = value
        elif value is not None:
            flat[key] = json.dumps(value)
    return flat


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
