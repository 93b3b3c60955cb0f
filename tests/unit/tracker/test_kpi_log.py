"""KPI intervals in SQLite: workers agree on an interval's id, values sum over workers, a
flush overwrites (never adds), pruning keeps the newest and ids never start again."""

from __future__ import annotations

from sipbridge.tracker.kpi_log import KpiLog
from sipbridge.tracker.store import TrackerStore


def test_workers_opening_the_same_start_share_one_interval(store: TrackerStore) -> None:
    first = KpiLog(store).open_interval(900.0, 1800.0)
    again = KpiLog(store).open_interval(900.0, 1800.0)
    later = KpiLog(store).open_interval(1800.0, 2700.0)
    assert first == again
    assert (first.start, first.end) == (900.0, 1800.0)
    assert later.id == first.id + 1
    assert KpiLog(store).intervals() == [first, later]


def test_values_sum_over_workers_and_a_flush_replaces_the_workers_own(store: TrackerStore) -> None:
    log = KpiLog(store)
    interval = log.open_interval(0.0, 60.0).id
    log.write(interval, 0, {"commands/global/sent": 3, "queue/global/depth": 1})
    log.write(interval, 1, {"commands/global/sent": 4})
    log.write(interval, 0, {"commands/global/sent": 5, "queue/global/depth": 2})  # later flush
    assert log.totals(interval) == {"commands/global/sent": 9, "queue/global/depth": 2}
    assert log.totals(interval, except_worker=0) == {"commands/global/sent": 4}
    assert log.worker_values(interval, 0) == {"commands/global/sent": 5, "queue/global/depth": 2}


def test_series_reads_one_value_in_every_interval(store: TrackerStore) -> None:
    log = KpiLog(store)
    one, two = log.open_interval(0.0, 60.0).id, log.open_interval(60.0, 120.0).id
    log.write(one, 0, {"a/global/x": 1})
    log.write(one, 1, {"a/global/x": 2})
    log.write(two, 1, {"a/global/x": 7, "a/global/y": 1})
    assert log.series("a/global/x") == {one: 3, two: 7}


def test_prune_keeps_the_newest_intervals_and_ids_go_on(path, store: TrackerStore) -> None:
    log = KpiLog(store)
    ids = [log.open_interval(60.0 * n, 60.0 * (n + 1)).id for n in range(5)]
    for interval in ids:
        log.write(interval, 0, {"a/global/x": interval})
    assert log.prune(keep=2) == 3
    assert [i.id for i in log.intervals()] == ids[-2:]
    assert log.totals(ids[0]) == {}
    assert log.totals(ids[-1]) == {"a/global/x": ids[-1]}
    assert log.prune(keep=2) == 0
    store.close()
    reopened = TrackerStore(path)  # a restart: the history is there, new ids follow it
    try:
        log = KpiLog(reopened)
        assert [i.id for i in log.intervals()] == ids[-2:]
        assert log.open_interval(600.0, 660.0).id == ids[-1] + 1
    finally:
        reopened.close()
