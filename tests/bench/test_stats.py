"""The bench's arithmetic: percentiles of merged latency histograms, and rows from slices."""

import math
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from bench.__main__ import Slice, WrkRun, combine
from bench.stats import histogram_percentile, percentile_ms

latencies_us = st.lists(st.integers(min_value=0, max_value=200_000), min_size=1, max_size=400)
percents = st.sampled_from([0.1, 1, 25, 50, 90, 99, 99.9, 100])


@given(latencies_us, latencies_us, percents)
def test_merged_histograms_give_the_percentile_of_all_samples(first, second, pct):
    merged = Counter(first) + Counter(second)
    expected_ms = percentile_ms([us / 1e6 for us in first + second], pct)
    assert math.isclose(histogram_percentile(merged, pct) / 1000, expected_ms, rel_tol=1e-9)


def test_the_nearest_rank_is_the_smallest_value_with_that_share_of_samples_at_or_below():
    hundred = {us: 1 for us in range(1, 101)}
    assert [histogram_percentile(hundred, p) for p in (1, 50, 99, 99.9, 100)] == [
        1,
        50,
        99,
        100,
        100,
    ]
    thousand = {us: 1 for us in range(1, 1001)}
    assert histogram_percentile(thousand, 99.9) == 999  # not 1,000: pct/100 * n has float noise


def test_an_empty_histogram_has_no_percentile():
    assert math.isnan(histogram_percentile({}, 50))


def _slice(ok: int, sent: int, latency: dict[int, int], cpu: float, rss: float) -> Slice:
    counts = dict.fromkeys(
        ("crossed", "failed", "unexpected", "connect", "read", "write", "timeout"), 0.0
    )
    counts |= {"ok": ok, "sent": sent, "duration_us": 2e6}
    window = {"cpu": cpu, "rss": rss, "wall": 2.0, "loadgen": 0.2, "phone": 0.1}
    return Slice(WrkRun(counts, latency), window)


def test_a_row_sums_its_slices_and_takes_percentiles_over_all_of_them():
    # 2 in flight at the end of each slice, plus the request wrk builds but never sends.
    fast = _slice(ok=100, sent=103, latency={500: 100}, cpu=0.05, rss=180.0)
    slow = _slice(ok=100, sent=103, latency={800: 98, 900: 2}, cpu=0.07, rss=210.0)
    row = combine("sipbridge", 2, [fast, slow])
    assert (row.commands, row.seconds, row.errors) == (200, 4.0, 0)
    # Ranks over all 200 requests: not the slices' own p50s (0.5, 0.8) or p99s (0.5, 0.9),
    # nor their means.
    assert (row.p50_ms, row.p99_ms, row.p999_ms) == (0.5, 0.8, 0.9)
    assert math.isclose(row.cpu_us, 0.12 / 200 * 1e6)
    assert row.rss_mb == 210.0
    assert math.isclose(row.loadgen_cpu, 10.0)


def test_replies_missing_beyond_those_in_flight_count_as_lost_in_each_slice():
    whole = _slice(ok=100, sent=103, latency={500: 100}, cpu=0.05, rss=1.0)
    short = _slice(ok=100, sent=108, latency={500: 100}, cpu=0.05, rss=1.0)  # 5 never answered
    assert combine("sipbridge", 2, [whole, short]).errors == 5
