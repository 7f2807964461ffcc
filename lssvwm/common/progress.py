"""Progress of long jobs: rate, time left and the log lines of training and generation.

    progress = Progress(total_steps, start_step)
    logging.info(progress.line(step, loss, progress.rate(step)))
        # "step 120/600  loss 0.1234  2.10 steps/s  ETA 3m48s"
    on_frames = FrameProgress(num_frames, log=print)   # a `stream_generate` progress callback
    on_frames(done, seconds_per_frame)                 # "frame 40/200  12.3 ms/frame  ETA 0m02s"

Both estimate the time left from the average rate since the clock was last (re)started, so
compilation can be kept out of it: the trainer restarts the clock after its first step,
`FrameProgress` when generation starts (done = 0).
"""

from __future__ import annotations

import logging
import math
import time


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s"


class Progress:
    """Steps per second since the last report, and an ETA from the rate since the start."""

    def __init__(self, total: int, start: int = 0):
        self.total = total
        self._start = (start, time.perf_counter())
        self._last = self._start

    def reset_clock(self, done: int) -> None:
        """Restarts the timing at `done` (e.g. after compilation, which is not the job's speed)."""
        self._start = self._last = (done, time.perf_counter())

    def rate(self, done: int) -> float:
        """Steps per second since the previous call (or the start); updates the mark."""
        last_done, last_time = self._last
        now = time.perf_counter()
        self._last = (done, now)
        return (done - last_done) / max(now - last_time, 1e-9)

    def eta_seconds(self, done: int) -> float:
        start_done, start_time = self._start
        if done <= start_done:
            return math.inf
        return (self.total - done) * (time.perf_counter() - start_time) / (done - start_done)

    def line(self, step: int, loss: float, steps_per_sec: float) -> str:
        """The trainer's log line."""
        return (
            f"step {step}/{self.total}  loss {loss:.4f}  {steps_per_sec:.2f} steps/s  "
            f"ETA {format_duration(self.eta_seconds(step))}"
        )


class FrameProgress:
    """Logs "frame i/N  x ms/frame  ETA ..." about every `every_seconds` (and at the end)."""

    def __init__(self, total: int, *, every_seconds: float = 10.0, log=logging.info, what=""):
        self.total, self.every, self.log, self.what = total, every_seconds, log, what
        self._clock = Progress(total)
        self._logged_at = time.perf_counter()

    def __call__(self, done: int, seconds_per_frame: float) -> None:
        """Called with done = 0 when generation starts (restarts the clock), then per unit."""
        now = time.perf_counter()
        if done == 0:
            self._clock.reset_clock(0)
            self._logged_at = now
            return
        if done < self.total and now - self._logged_at < self.every:
            return
        self._logged_at = now
        self.log(
            f"{self.what}frame {done}/{self.total}  {1e3 * seconds_per_frame:.1f} ms/frame  "
            f"ETA {format_duration(self._clock.eta_seconds(done))}"
        )
