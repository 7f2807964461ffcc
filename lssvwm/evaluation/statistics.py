"""Bootstrap confidence intervals over evaluation episodes, and distance bins.

    mean, low, high = bootstrap_mean(values_E)                  one figure per episode
    mean_K, low_K, high_K = bootstrap_ratio(sums_EK, counts_EK)  pooled frames per bin

Episodes are the independent unit (frames of one episode are strongly correlated), so both
resample whole episodes with replacement and take percentile intervals. `bootstrap_ratio`
pools the frames of the resampled episodes in each bin (sum of values / number of frames), so
an episode with many frames in a bin weighs more, as in the point estimate.

Distance bins (`distance_bins`): the edges e_1 < e_2 < ... give the bins [1, e_1], (e_1, e_2],
..., (e_last, inf), plus a last bin for views never seen in the context.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95


def _resample_indices(num_episodes: int, resamples: int, seed: int) -> np.ndarray:
    if num_episodes < 1:
        raise ValueError("a bootstrap needs at least one episode")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    rng = np.random.default_rng(seed)
    return rng.integers(0, num_episodes, size=(resamples, num_episodes))


def _percentiles(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    tail = 100.0 * (1.0 - confidence) / 2.0
    with warnings.catch_warnings():  # an empty bin is all NaN: NaN interval, no warning
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(samples, [tail, 100.0 - tail], axis=0)
    return low, high


def bootstrap_mean(
    values_E,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(mean, low, high): the mean of per-episode values and its percentile interval."""
    values_E = np.asarray(values_E, np.float64)
    if values_E.ndim != 1:
        raise ValueError(f"expected one value per episode [E], got shape {values_E.shape}")
    index = _resample_indices(values_E.shape[0], resamples, seed)
    low, high = _percentiles(values_E[index].mean(axis=1), confidence)
    return float(values_E.mean()), float(low), float(high)


def bootstrap_ratio(
    sums_EK,
    counts_EK,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin k: sum over episodes of sums / sum of counts, and its interval ([K] each;
    NaN for a bin without frames)."""
    sums_EK = np.asarray(sums_EK, np.float64)
    counts_EK = np.asarray(counts_EK, np.float64)
    if sums_EK.shape != counts_EK.shape or sums_EK.ndim != 2:
        raise ValueError(
            f"sums and counts must both be [E, K], got {sums_EK.shape} and {counts_EK.shape}"
        )
    index = _resample_indices(sums_EK.shape[0], resamples, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        point = sums_EK.sum(0) / counts_EK.sum(0)
        samples = sums_EK[index].sum(1) / counts_EK[index].sum(1)  # [resamples, K]
    low, high = _percentiles(samples, confidence)
    empty = counts_EK.sum(0) == 0
    return (
        np.where(empty, np.nan, point),
        np.where(empty, np.nan, low),
        np.where(empty, np.nan, high),
    )


@dataclasses.dataclass(frozen=True)
class DistanceBin:
    """Frames whose distance d satisfies low <= d <= high (high None: unbounded);
    `never_seen`: the frames no context frame covers."""

    label: str
    low: int | None
    high: int | None
    never_seen: bool = False

    def contains(self, distance: np.ndarray) -> np.ndarray:
        distance = np.asarray(distance)
        if self.never_seen:
            return distance < 0
        inside = distance >= self.low
        if self.high is not None:
            inside &= distance <= self.high
        return inside


def distance_bins(edges) -> list[DistanceBin]:
    """[1, e1], (e1, e2], ..., (e_last, inf) and "never seen" for increasing edges >= 1."""
    edges = [int(e) for e in edges]
    if not edges or edges[0] < 1 or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ValueError(f"distance edges must be increasing integers >= 1, got {edges}")
    bins, low = [], 1
    for edge in edges:
        bins.append(DistanceBin(f"{low}-{edge}" if low < edge else f"{edge}", low, edge))
        low = edge + 1
    bins.append(DistanceBin(f">{edges[-1]}", low, None))
    bins.append(DistanceBin("never seen", None, None, never_seen=True))
    return bins


def default_distance_edges(
    attention_window: int | None, training_length: int, max_distance: int
) -> list[int]:
    """The edges ARCHITECTURE.md names -- the attention window k (or the sliding window W) and
    the training length -- then doublings of the training length up to `max_distance`, so
    the curve has points past the training length."""
    edges = {int(training_length)}
    if attention_window:
        edges.add(int(attention_window))
    edge = 2 * int(training_length)
    while edge < max_distance:
        edges.add(edge)
        edge *= 2
    return sorted(e for e in edges if e >= 1)
