"""The KPI maths: how commands count, percentiles from buckets, cursors, aligned intervals, and
the recorder's per-interval values (real SQLite, a fake clock)."""

from __future__ import annotations

import pytest

from sipbridge.admin import kpi
from sipbridge.admin.kpi_recorder import KpiRecorder
from sipbridge.errors import InvalidInput
from sipbridge.tracker.kpi_log import KpiLog
from sipbridge.tracker.models import CommandLogEntry
from sipbridge.tracker.store import TrackerStore


def entry(outcome: str = "ok", **fields: object) -> CommandLogEntry:
    values: dict[str, object] = {
        "source": "http:127.0.0.1",
        "reason": "x",
        "phone_id": "1001",
        "transport": "sip",
        "latency_ms": 12.0,
    }
    return CommandLogEntry(outcome=outcome, **(values | fields))  # type: ignore[arg-type]


# -- counting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "sent_flag", "expected"),
    [
        ("ok", None, ("succeeded", True)),
        ("PhoneRejected", None, ("failed", True)),
        ("PhoneBusy", None, ("failed", True)),
        ("PhoneTimeout", True, ("timedOut", True)),
        ("PhoneTimeout", False, ("timedOut", False)),
        ("ContactResolutionTimeout", False, ("timedOut", False)),
        ("PhoneUnreachable", None, ("failed", False)),
        ("QueueFull", None, ("failed", False)),
        ("UnknownCall", None, ("failed", False)),
        ("SomethingNew", None, ("failed", False)),
    ],
)
def test_outcomes_are_classified_by_the_error_tree(outcome, sent_flag, expected) -> None:
    assert kpi.classify(entry(outcome, sent=sent_flag)) == expected


def test_counters_count_globally_per_transport_and_per_phone() -> None:
    counters = kpi.CommandCounters()
    counters.command_ended(entry("ok", latency_ms=3.0), written=True)
    counters.command_ended(entry("ok", transport="http", phone_id="1002"), written=True)
    counters.command_ended(entry("PhoneTimeout", sent=True, latency_ms=3000.0), written=True)
    counters.command_ended(entry("QueueFull", transport=None, latency_ms=0.1), written=False)
    counters.late_outcome(entry("PhoneTimeout"), "ok")
    v = counters.values
    assert kpi.entity_values(v, "commands", "global", None) == {
        "requested": 4, "sent": 3, "succeeded": 2, "failed": 1, "timedOut": 1,
        "queueFull": 1, "lateAnswers": 1,
    }  # fmt: skip
    assert kpi.entity_values(v, "commands", "transport", "sip")["requested"] == 2
    assert kpi.entity_values(v, "commands", "transport", "http")["succeeded"] == 1
    assert kpi.entity_values(v, "commands", "phone", "1001") == {
        "requested": 3, "sent": 2, "succeeded": 1, "failed": 1, "timedOut": 1,
    }  # fmt: skip
    assert kpi.entity_ids(v, "commands", "phone") == ["1001", "1002"]
    latency = kpi.entity_values(v, "latency", "global", None)
    assert latency["count"] == 3  # the queue-full refusal never reached a phone
    assert latency["mean"] == pytest.approx((3.0 + 12.0 + 3000.0) / 3, abs=0.01)
    assert kpi.entity_values(v, "latency", "transport", "http")["count"] == 1


def test_phones_past_the_cap_count_as_other() -> None:
    counters = kpi.CommandCounters(max_phones=2)
    for phone in ("a", "b", "c", "d", "a"):
        counters.command_ended(entry(phone_id=phone), written=True)
    assert kpi.entity_ids(counters.values, "commands", "phone") == ["a", "b", "other"]
    assert kpi.entity_values(counters.values, "commands", "phone", "other")["requested"] == 2
    assert kpi.entity_values(counters.values, "commands", "phone", "a")["requested"] == 2


# -- percentiles ------------------------------------------------------------------------------


def buckets_of(*latencies: float) -> list[float]:
    counts = [0.0] * kpi.BUCKETS
    for latency in latencies:
        counts[kpi.bucket_of(latency)] += 1
    return counts


def test_bucket_bounds_are_upper_bounds() -> None:
    assert kpi.bucket_of(0.5) == 0 and kpi.bucket_of(1.0) == 0 and kpi.bucket_of(1.01) == 1
    assert kpi.bucket_of(30_000) == len(kpi.LATENCY_BOUNDS_MS) - 1
    assert kpi.bucket_of(30_001) == len(kpi.LATENCY_BOUNDS_MS)  # the open bucket


def test_percentiles_interpolate_inside_their_bucket() -> None:
    # 100 commands in (10, 20] ms: the median is half way through that bucket.
    assert kpi.percentile(buckets_of(*[15.0] * 100), 0.5) == pytest.approx(15.0)
    # 90 fast (≤ 1 ms), 10 slow in (100, 150]: p50 and p90 fall in the first bucket, p99 in
    # the slow one, nine tenths of the way through it.
    counts = buckets_of(*([0.5] * 90 + [120.0] * 10))
    assert kpi.percentile(counts, 0.5) == pytest.approx(0.5 / 0.9, abs=1e-3)
    assert kpi.percentile(counts, 0.9) == pytest.approx(1.0)
    assert kpi.percentile(counts, 0.99) == pytest.approx(100 + 50 * 0.9)


def test_percentile_of_nothing_is_none_and_the_open_bucket_its_lower_bound() -> None:
    assert kpi.percentile([0.0] * kpi.BUCKETS, 0.5) is None
    assert kpi.percentile(buckets_of(60_000.0), 0.99) == kpi.LATENCY_BOUNDS_MS[-1]


def test_summed_histograms_give_the_percentile_of_the_union() -> None:
    one, two = buckets_of(*[5.0] * 50), buckets_of(*[500.0] * 50)
    summed = [a + b for a, b in zip(one, two, strict=True)]
    low, high = kpi.percentile(summed, 0.25), kpi.percentile(summed, 0.75)
    assert low is not None and high is not None
    assert low <= 5 < 300 < high <= 500


# -- cursors ----------------------------------------------------------------------------------

IDS = ["a", "b", "c", "d", "e"]


def test_first_page_and_its_cursor() -> None:
    page = kpi.page(IDS, limit=2)
    assert page.items == ["a", "b"]
    assert page.cursor == {"start": "a", "before": "-1", "after": "b", "end": "e"}


def test_after_walks_forward_to_the_end() -> None:
    seen, after = [], None
    for _ in range(5):
        page = kpi.page(IDS, after=after, limit=2)
        seen += page.items
        if page.cursor["after"] == "-1":
            break
        after = page.cursor["after"]
    assert seen == IDS
    assert page.cursor == {"start": "a", "before": "e", "after": "-1", "end": "e"}


def test_before_walks_back() -> None:
    page = kpi.page(IDS, before="e", limit=2)
    assert page.items == ["c", "d"]
    assert page.cursor == {"start": "a", "before": "c", "after": "d", "end": "e"}
    assert kpi.page(IDS, before=page.cursor["before"], limit=2).items == ["a", "b"]


def test_no_limit_is_everything_and_empty_is_all_minus_one() -> None:
    assert kpi.page(IDS, limit=None).items == IDS
    assert kpi.page([], limit=3).cursor == dict.fromkeys(("start", "before", "after", "end"), "-1")


@pytest.mark.parametrize(
    "arguments", [{"after": "zz"}, {"before": "zz"}, {"after": "a", "before": "c"}]
)
def test_a_cursor_outside_the_listing_is_invalid_input(arguments) -> None:
    with pytest.raises(InvalidInput):
        kpi.page(IDS, limit=2, **arguments)


def test_entity_ids_sort_numbers_as_numbers() -> None:
    values = {f"inbound/status/{code}/responses": 1.0 for code in (404, 200, 1000)}
    assert kpi.entity_ids(values, "inbound", "status") == ["200", "404", "1000"]


# -- intervals and the recorder ---------------------------------------------------------------


def test_intervals_align_on_multiples_of_their_length() -> None:
    assert kpi.interval_bounds(1000.0, 900) == (900.0, 1800.0)
    assert kpi.interval_bounds(1800.0, 900) == (1800.0, 2700.0)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def recorder_on(store, clock, counters, *, worker=0, queue=None, keep=3) -> KpiRecorder:
    recorder = KpiRecorder(
        KpiLog(store),
        worker=worker,
        length=60,
        keep=keep,
        counters=[lambda: counters.values],
        gauges=[lambda: {"queue/global/depth": queue[0]}] if queue else [],
        clock=clock,
    )
    recorder.open()
    return recorder


def test_recorder_splits_counts_into_intervals(tmp_path) -> None:
    store, clock, counters = TrackerStore(tmp_path / "t.db"), Clock(65.0), kpi.CommandCounters()
    try:
        depth = [2]
        recorder = recorder_on(store, clock, counters, queue=depth)
        counters.command_ended(entry(), written=True)  # before the first sample
        recorder.sample()
        depth[0] = 5
        recorder.sample()
        depth[0] = 1
        recorder.sample()
        assert recorder.values()["commands/global/requested"] == 1
        assert recorder.values()["queue/global/depth"] == 1
        assert recorder.values()["queue/global/peak"] == 5
        first = recorder.interval
        counters.command_ended(entry(), written=True)
        clock.now = 121.0
        recorder.sample()  # past the end: the interval is written, the next one opens
        assert recorder.interval.id == first.id + 1 and recorder.interval.start == 120.0
        assert "commands/global/requested" not in recorder.values()
        counters.command_ended(entry(), written=True)
        assert recorder.values()["commands/global/requested"] == 1
        assert KpiLog(store).totals(first.id)["commands/global/requested"] == 2
    finally:
        store.close()


def test_a_restarted_worker_carries_on_its_interval(tmp_path) -> None:
    path = tmp_path / "t.db"
    store, clock = TrackerStore(path), Clock(65.0)
    counters = kpi.CommandCounters()
    recorder = recorder_on(store, clock, counters)
    for _ in range(3):
        counters.command_ended(entry(), written=True)
    recorder.flush()
    store.close()
    store = TrackerStore(path)  # a new process: its counters start at zero
    try:
        counters = kpi.CommandCounters()
        recorder = recorder_on(store, clock, counters)
        counters.command_ended(entry(), written=True)
        recorder.flush()
        assert KpiLog(store).totals(recorder.interval.id)["commands/global/requested"] == 4
    finally:
        store.close()


def test_recorder_sums_over_workers_and_prunes_history(tmp_path) -> None:
    store, clock = TrackerStore(tmp_path / "t.db"), Clock(5.0)
    try:
        one, two = kpi.CommandCounters(), kpi.CommandCounters()
        first = recorder_on(store, clock, one, worker=0, keep=2)
        second = recorder_on(store, clock, two, worker=1, keep=2)
        for n in range(5):
            one.command_ended(entry(), written=True)
            two.command_ended(entry(), written=True)
            two.command_ended(entry(), written=True)
            clock.now = 60.0 * (n + 1) + 1
            first.sample()
            second.sample()
        log = KpiLog(store)
        kept = log.intervals()
        assert len(kept) == 3  # the current one and keep=2 finished ones
        assert [log.totals(i.id).get("commands/global/requested") for i in kept[:-1]] == [3, 3]
    finally:
        store.close()
