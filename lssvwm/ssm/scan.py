"""`ssd`: the public Mamba-2 scan, choosing how to evaluate the recurrence."""

from __future__ import annotations

import enum

from lssvwm.common.platform import target_platform
from lssvwm.ssm.chunked import ssd_chunked
from lssvwm.ssm.recurrence import ssd_sequential


class ScanMethod(enum.Enum):
    """How `ssd` evaluates the recurrence. All methods give the same result."""

    AUTO = "auto"  # SEQUENTIAL for very short sequences, else CHUNKED
    CHUNKED = "chunked"  # the chunked schedule that suits the current backend (below)
    CHUNKED_LOOP = "chunked_loop"  # one loop step per chunk, intermediates stay in cache (CPU)
    CHUNKED_PARALLEL = "chunked_parallel"  # all chunks as batched matmuls (GPU/TPU)
    SEQUENTIAL = "sequential"  # lax.scan over tokens; the reference


# At or below this length the plain token scan is used. Measured on CPU (experiments/bench_ssd):
# forward-only, the token scan ties or wins up to ~128 tokens at the model's large batches, but
# its reverse mode is 10-20x slower than the chunked one at every length measured (>= 256), and
# training is what the long sequences are for; 8 keeps streaming steps of small blocks cheap.
SEQUENTIAL_MAX_LENGTH = 8


def _chunks_per_step_for_backend() -> int | None:
    # On CPU the all-chunks-at-once schedule is bound by memory traffic over its [chunks, ...]
    # intermediates and one chunk per scan step wins (experiments/bench_ssd). Accelerators have
    # the bandwidth and want the parallelism (not measured here: no accelerator was available).
    return 1 if target_platform() == "cpu" else None


def ssd(
    x,
    dt,
    A,
    B,
    C,
    *,
    chunk_size: int = 64,
    initial_state=None,
    reset=None,
    method: ScanMethod | str = ScanMethod.AUTO,
):
    """Mamba-2 selective state-space scan (the D skip and gating belong to the mixer).

    Args:
      x: [b, l, h, p] inputs; any l >= 1.
      dt: [b, l, h] positive step sizes (already softplus-ed).
      A: [h] negative decay rates.
      B, C: [b, l, g, n]; head h uses group h // (h_total // g).
      chunk_size: tokens per chunk of the chunked algorithms.
      initial_state: optional [b, h, p, n] state carried in from a previous call.
      reset: optional [b, l] 0/1 mask; at 1 the decay into that position is 0 (new episode).
      method: a `ScanMethod` or its string value.

    Returns:
      y [b, l, h, p] in x's dtype and final_state [b, h, p, n] in float32. Feeding final_state
      back as initial_state of the next call continues the sequence exactly.
    """
    method = ScanMethod(method)
    if method is ScanMethod.AUTO:
        length = x.shape[1] if x.ndim == 4 else 0
        method = ScanMethod.SEQUENTIAL if length <= SEQUENTIAL_MAX_LENGTH else ScanMethod.CHUNKED
    if method is ScanMethod.SEQUENTIAL:
        return ssd_sequential(x, dt, A, B, C, initial_state=initial_state, reset=reset)
    chunks_per_step = {
        ScanMethod.CHUNKED: _chunks_per_step_for_backend(),
        ScanMethod.CHUNKED_LOOP: 1,
        ScanMethod.CHUNKED_PARALLEL: None,
    }[method]
    return ssd_chunked(
        x,
        dt,
        A,
        B,
        C,
        chunk_size=chunk_size,
        initial_state=initial_state,
        reset=reset,
        chunks_per_step=chunks_per_step,
    )
