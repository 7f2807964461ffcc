"""The metric writer of a training run (the progress line is `lssvwm.common.progress`).

    writer = MetricWriter(workdir)            # metrics.jsonl + TensorBoard events in workdir/tb
    writer.write(step, {"loss": 0.1, "steps_per_sec": 2.0})

`metrics.jsonl` holds one JSON object per logged step (`step` plus the scalars), appended, so a
resumed run continues the same file (a resumed step that was logged before is logged again: the
later line wins for readers that key on step). TensorBoard files come from `tensorboardX`, a pure
Python writer: TensorFlow is not needed to write them (only to view them, with `tensorboard`).
In a multi-host run only process 0 writes: `MetricWriter(workdir, active=is_primary())`.
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Mapping

import numpy as np
from tensorboardX import SummaryWriter


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
