"""The fixed, log-spaced latency bins every rollup uses, so histograms of any minutes, versions or
processes merge by adding counts.

Bin 0 holds latencies below LOWEST_MS; bin k (1 ≤ k ≤ TOP_BIN) holds [bound(k-1), bound(k)) with
bound(k) = LOWEST_MS · 2^(k / PER_OCTAVE); the last bin, OVERFLOW_BIN, what is ≥ bound(TOP_BIN)
(about 168 s). With 4 bins per doubling a bin is 19% wide, so a percentile read from the bins is
within one bin of the exact one. Prometheus gets every PER_OCTAVE-th bound (one per doubling), which
keeps the series per version small while staying mergeable across hosts.
"""

from __future__ import annotations

import math
from bisect import bisect_right

LOWEST_MS = 0.01
PER_OCTAVE = 4
TOP_BIN = 96
OVERFLOW_BIN = TOP_BIN + 1


def bound_ms(k: int) -> float:
    """Upper bound of bin k (inf for the overflow bin)."""
    if k >= OVERFLOW_BIN:
        return math.inf
    return LOWEST_MS * 2 ** (k / PER_OCTAVE)


def lower_ms(k: int) -> float:
    return 0.0 if k <= 0 else bound_ms(k - 1)


BOUNDS = [bound_ms(k) for k in range(TOP_BIN + 1)]


def latency_bin(latency_ms: float) -> int:
    """The bin of a latency: how many bounds are ≤ it (NaN: bin 0, a bad clock reading still counts)."""
    if not latency_ms >= LOWEST_MS:
        return 0
    return bisect_right(BOUNDS, latency_ms)


def percentile_ms(bins: dict[int, int], q: float) -> float | None:
    """The q-quantile (0–1) of the latencies counted in `bins` ({bin: count}): the order statistic
    numpy's default (linear) method would start from, placed inside its bin by linear
    interpolation, as Prometheus' histogram_quantile does. None for no counts."""
    total = sum(bins.values())
    if total <= 0:
        return None
    rank = q * (total - 1)  # 0-based position of the order statistic
    seen = 0
    for k in sorted(bins):
        count = bins[k]
        if count <= 0:
            continue
        if rank < seen + count:
            low, high = lower_ms(k), bound_ms(k)
            if math.isinf(high):
                return low
            return low + (high - low) * (rank - seen + 0.5) / count
        seen += count
    return None  # not reached: rank < total


def prometheus_buckets(bins: dict[int, int]) -> list[tuple[str, float]]:
    """Cumulative (le in seconds, count) pairs at each doubling, +Inf last, for a Prometheus histogram."""
    out = []
    cumulative = 0
    ordered = sorted(bins.items())
    i = 0
    for k in range(0, TOP_BIN + 1, PER_OCTAVE):
        while i < len(ordered) and ordered[i][0] <= k:
            cumulative += ordered[i][1]
            i += 1
        out.append((f"{bound_ms(k) / 1000:.9g}", float(cumulative)))
    out.append(("+Inf", float(sum(bins.values()))))
    return out
