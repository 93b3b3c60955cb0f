"""The SSE hub on a real SQLite log: live fan-out by filter, and a reader that falls behind is
cut off (its queue never grows past the limit) with the id to resume from."""

from __future__ import annotations

import asyncio

import pytest

from sipbridge.api.events import EventHub
from sipbridge.tracker import TrackerStore
from sipbridge.tracker.event_log import EventFilter, EventLog


@pytest.fixture
def store(tmp_path):
    store = TrackerStore(tmp_path / "t.sqlite3")
    yield store
    store.close()


def _events(store: TrackerStore, count: int, phone: str = "1001") -> None:
    for n in range(count):
        store.record_event("command.queued", phone=phone, data={"n": n})


async def _settled(hub: EventHub, position: int) -> None:
    for _ in range(200):
        if hub.position >= position:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"hub stuck at {hub.position}")


async def test_live_events_reach_matching_subscribers_only(store):
    hub = EventHub(EventLog(store), queue_limit=100)
    hub.start()
    try:
        mine = hub.subscribe(EventFilter(phone="1001"), 0)
        other = hub.subscribe(EventFilter(phone="2002"), 0)
        _events(store, 3)
        await _settled(hub, 3)
        assert [mine.queue.get_nowait().id for _ in range(3)] == [1, 2, 3]
        assert other.queue.empty()
    finally:
        await hub.stop()


async def test_a_subscriber_that_falls_behind_is_cut_off_bounded(store):
    hub = EventHub(EventLog(store), queue_limit=10)
    hub.start()
    try:
        slow = hub.subscribe(EventFilter(), 0)
        fast = hub.subscribe(EventFilter(), 0)

        async def keep_up() -> None:  # as a stream's reader does: waits on its queue
            while fast.last_id < 50:
                fast.last_id = (await fast.queue.get()).id

        reader = asyncio.create_task(keep_up())
        _events(store, 50)  # a burst five times the queue
        await asyncio.wait_for(reader, 5)
        assert fast.last_id == 50 and fast.cut_after is None
        assert slow.queue.qsize() == 10  # never more than the limit
        assert slow.cut_after == 0 and slow not in hub.subscribers
    finally:
        await hub.stop()


async def test_a_first_subscriber_after_a_quiet_time_starts_from_now(store):
    hub = EventHub(EventLog(store), queue_limit=100)
    hub.start()
    try:
        _events(store, 5)  # nobody listens: the hub does not read them
        await asyncio.sleep(0.1)
        late = hub.subscribe(EventFilter(), 5)
        assert hub.position == 5
        _events(store, 1)
        await _settled(hub, 6)
        assert late.queue.get_nowait().id == 6 and late.queue.empty()
    finally:
        await hub.stop()
