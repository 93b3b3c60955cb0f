"""Reading the event log (table `events`, written by TrackerStore in the same transaction as each
change) and keeping it bounded. Every worker reads the same table, so a client of any worker
sees every worker's events, in id order.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sipbridge.tracker.store import TrackerStore

EVENT_TYPES = (
    "call.ringing",
    "call.connected",
    "call.held",
    "call.resumed",
    "call.ended",
    "phone.registered",
    "phone.unregistered",
    "phone.expired",
    "phone.profile_changed",
    "command.queued",
    "command.completed",
    "command.failed",
)


@dataclass(frozen=True)
class Event:
    id: int
    type: str
    time: float
    phone: str | None
    call_id: str | None
    sequence: int | None
    data: dict[str, Any]
    client_state: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "time": self.time,
            "phone": self.phone,
            "call_id": self.call_id,
            "sequence": self.sequence,
            "data": self.data,
            "client_state": self.client_state,
        }


@dataclass(frozen=True)
class EventFilter:
    """Which events a reader wants: types (empty: all), one phone, one call."""

    types: Collection[str] = ()
    phone: str | None = None
    call_id: str | None = None

    def matches(self, event: Event) -> bool:
        return (
            (not self.types or event.type in self.types)
            and (self.phone is None or event.phone == self.phone)
            and (self.call_id is None or event.call_id == self.call_id)
        )


class EventLog:
    def __init__(self, store: TrackerStore) -> None:
        self._store = store

    def after(self, last_id: int, *, limit: int = 500) -> list[Event]:
        """The events with ids above `last_id`, oldest first, at most `limit`."""
        rows = self._store.execute(
            "SELECT id, type, at, phone, call_id, sequence, data, client_state FROM events "
            "WHERE id > ? ORDER BY id LIMIT ?",
            (last_id, limit),
        )
        return [
            Event(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[7]) for r in rows
        ]

    def bounds(self) -> tuple[int, int]:
        """(oldest id kept, newest id); (0, 0) when the log is empty."""
        row = self._store.execute(
            "SELECT (SELECT min(id) FROM events), (SELECT max(id) FROM events)"
        )[0]
        return int(row[0] or 0), int(row[1] or 0)

    def prune(self, *, max_age: float, max_rows: int, at_most: int = 5_000) -> int:
        """Drop events older than `max_age` seconds or beyond the newest `max_rows`, at most
        `at_most` at once; the newest event always stays (ids must never go back)."""
        oldest, newest = self.bounds()
        if newest == 0:
            return 0
        below = max(oldest, newest - max_rows + 1)
        cutoff = self._store.now() - max_age
        row = self._store.execute(
            "SELECT max(id) FROM (SELECT id, at FROM events ORDER BY id LIMIT ?) WHERE at < ?",
            (at_most, cutoff),
        )[0]
        if row[0] is not None:
            below = max(below, int(row[0]) + 1)
        below = min(below, oldest + at_most, newest)
        if below <= oldest:
            return 0
        return len(self._store.execute("DELETE FROM events WHERE id < ? RETURNING id", (below,)))
