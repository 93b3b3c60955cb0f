"""The alarm log on a real SQLite file: raise/clear idempotence, history bounds, the cursors."""

from __future__ import annotations

import pytest

from sipbridge.errors import NotFound, StoreError
from sipbridge.tracker.alarm_log import Alarm, AlarmLog, AlarmRecord, PageQuery, page_of
from sipbridge.tracker.store import TrackerStore


def alarm(key: str, severity: str = "major") -> Alarm:
    return Alarm(key=key, severity=severity, source="test", description=f"{key} is {severity}")


@pytest.fixture
def alarms(store: TrackerStore) -> AlarmLog:
    return AlarmLog(store, history_max_rows=100)


def history(alarms: AlarmLog) -> list[tuple[str, str]]:
    page = alarms.page("history", PageQuery(limit=1000))
    return [(r.key, r.severity) for r in page.records]


def test_raising_twice_with_one_severity_writes_once(alarms):
    assert alarms.raise_alarm(alarm("a"))
    assert not alarms.raise_alarm(alarm("a"))
    assert history(alarms) == [("a", "major")]
    assert alarms.active_keys() == {"a": "major"}


def test_a_new_severity_updates_the_active_row_and_adds_history(alarms):
    alarms.raise_alarm(alarm("a", "warning"))
    first = alarms.page("active", PageQuery()).records[0]
    assert alarms.raise_alarm(alarm("a", "critical"))
    [now] = alarms.page("active", PageQuery()).records
    assert (now.id, now.severity) == (first.id, "critical")
    assert history(alarms) == [("a", "warning"), ("a", "critical")]


def test_clearing_adds_a_cleared_row_once(alarms):
    alarms.raise_alarm(alarm("a"))
    assert alarms.clear_alarm("a")
    assert not alarms.clear_alarm("a")
    assert alarms.active_keys() == {}
    assert history(alarms) == [("a", "major"), ("a", "cleared")]
    assert alarms.page("active", PageQuery()).records == ()


def test_ids_are_never_reused_after_the_newest_active_alarm_clears(alarms):
    alarms.raise_alarm(alarm("a"))
    old = alarms.page("active", PageQuery()).records[0].id
    alarms.clear_alarm("a")
    alarms.raise_alarm(alarm("b"))
    assert alarms.page("active", PageQuery()).records[0].id > old


def test_history_keeps_the_newest_rows(store):
    alarms = AlarmLog(store, history_max_rows=100)
    for n in range(130):
        alarms.raise_alarm(alarm(f"k{n}"))
    ids = [r.id for r in alarms.page("history", PageQuery(limit=1000)).records]
    assert ids == list(range(31, 131))
    assert alarms.last_change() is not None


def test_history_survives_reopening(path):
    store = TrackerStore(path)
    AlarmLog(store, history_max_rows=100).raise_alarm(alarm("a"))
    store.close()
    store = TrackerStore(path)
    try:
        assert history(AlarmLog(store, history_max_rows=100)) == [("a", "major")]
    finally:
        store.close()


def test_last_change_is_none_before_any_alarm_and_unknown_ids_are_not_found(alarms):
    assert alarms.last_change() is None
    with pytest.raises(NotFound):
        alarms.get("active", 1)
    alarms.raise_alarm(alarm("a"))
    alarms.clear_alarm("a")
    assert alarms.get("history", 2).severity == "cleared"
    with pytest.raises(NotFound):
        alarms.get("active", 1)


def test_a_failed_history_write_leaves_no_active_row(store, alarms):
    store.execute("CREATE TRIGGER no_history BEFORE INSERT ON alarm_history "
                  "BEGIN SELECT RAISE(ABORT, 'disk full'); END")  # fmt: skip
    with pytest.raises(StoreError):
        alarms.raise_alarm(alarm("a"))
    assert alarms.active_keys() == {}


def test_walking_seven_alarms_three_a_page_forwards_and_back(alarms):
    for n in range(7):
        alarms.raise_alarm(alarm(f"k{n}"))
    first = alarms.page("active", PageQuery(limit=3))
    assert [r.id for r in first.records] == [1, 2, 3]
    assert (first.before, first.after) == (None, 3)
    second = alarms.page("active", PageQuery(limit=3, after=first.after))
    assert [r.id for r in second.records] == [4, 5, 6]
    assert (second.before, second.after) == (4, 6)
    third = alarms.page("active", PageQuery(limit=3, after=second.after))
    assert [r.id for r in third.records] == [7]
    assert (third.before, third.after) == (7, None)
    assert alarms.page("active", PageQuery(limit=3, after=7)).records == ()
    back = alarms.page("active", PageQuery(limit=3, before=third.before))
    assert [r.id for r in back.records] == [4, 5, 6]
    assert (back.before, back.after) == (4, 6)
    start = alarms.page("active", PageQuery(limit=3, before=back.before))
    assert [r.id for r in start.records] == [1, 2, 3]
    assert (start.before, start.after) == (None, 3)
    assert alarms.page("active", PageQuery(limit=3, before=1)).records == ()


def record(n: int) -> AlarmRecord:
    return AlarmRecord(id=n, key=f"k{n}", severity="major", source="s", description="d", at=0.0)


@pytest.mark.parametrize(
    ("ids", "backwards", "behind", "expected"),
    [
        ([], False, True, ([], None, None)),
        ([1, 2], False, False, ([1, 2], None, None)),
        ([1, 2, 3], False, False, ([1, 2], None, 2)),
        ([5, 6, 7], False, True, ([5, 6], 5, 6)),
        ([9, 8, 7], True, False, ([8, 9], 8, None)),
        ([9, 8], True, True, ([8, 9], None, 9)),
    ],
)
def test_page_of(ids, backwards, behind, expected):
    page = page_of([record(n) for n in ids], limit=2, backwards=backwards, more_behind=behind)
    assert ([r.id for r in page.records], page.before, page.after) == expected
