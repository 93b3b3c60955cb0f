"""Small statistics helpers for the bench (no numpy)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def _nearest_rank(pct: float, total: int) -> int:
    """The 1-based rank of the `pct` percentile among `total` values: ceil(pct/100 * total),
    with the float noise of pct/100 rounded off first (99.9 % of 1,000 is rank 999, not 1,000)."""
    return max(1, min(total, math.ceil(round(pct / 100 * total, 9))))


def percentile_ms(samples_s: Sequence[float], pct: float) -> float:
    """The `pct` percentile (nearest rank) of samples in seconds, in milliseconds."""
    if not samples_s:
        return float("nan")
    ordered = sorted(samples_s)
    return ordered[_nearest_rank(pct, len(ordered)) - 1] * 1000


def histogram_percentile(counts: Mapping[int, int], pct: float) -> float:
    """The `pct` percentile (nearest rank, as `percentile_ms`) of a histogram value -> count."""
    total = sum(counts.values())
    if not total:
        return float("nan")
    rank = _nearest_rank(pct, total)
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= rank:
            return float(value)
    raise AssertionError("unreachable: the ranks add up to the total")
