"""Small statistics helpers for the bench (no numpy)."""

from __future__ import annotations

from collections.abc import Sequence


def percentile_ms(samples_s: Sequence[float], pct: float) -> float:
    """The `pct` percentile (nearest rank) of samples in seconds, in milliseconds."""
    if not samples_s:
        return float("nan")
    ordered = sorted(samples_s)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank] * 1000
