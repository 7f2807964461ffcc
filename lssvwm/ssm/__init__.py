"""Mamba-2 state-space scans: chunked SSD, the sequential reference and single-token steps.

Public contract (see ARCHITECTURE.md): `ssd(x, dt, A, B, C, *, chunk_size, initial_state, reset)`
and `ssd_step(state, x, dt, A, B, C)`.
"""

from lssvwm.ssm.chunked import ssd_chunked
from lssvwm.ssm.recurrence import ssd_sequential, ssd_step
from lssvwm.ssm.scan import ScanMethod, ssd

__all__ = ["ScanMethod", "ssd", "ssd_chunked", "ssd_sequential", "ssd_step"]
