"""Each worker's heartbeat in the tracker database (table `workers`): which are alive, what
they carry, where they listen; the device API's status sums them (admin/views.py)."""

from __future__ import annotations

from dataclasses import dataclass

from sipbridge.tracker.store import TrackerStore

BEAT_EVERY = 5.0
ALIVE_WITHIN = 3 * BEAT_EVERY  # a worker missing three beats is counted dead


@dataclass(frozen=True)
class WorkerBeat:
    index: int
    pid: int
    started_at: float
    seen_at: float
    in_flight: int
    user_agent: str | None
    listener: str | None


class Heartbeats:
    def __init__(self, store: TrackerStore) -> None:
        self._store = store

    def beat(self, beat: WorkerBeat) -> None:
        self._store.execute(
            "INSERT INTO workers (idx, pid, started_at, seen_at, in_flight, user_agent, listener)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (idx) DO UPDATE SET pid = excluded.pid,"
            " started_at = excluded.started_at, seen_at = excluded.seen_at,"
            " in_flight = excluded.in_flight, user_agent = excluded.user_agent,"
            " listener = excluded.listener",
            (
                beat.index,
                beat.pid,
                beat.started_at,
                beat.seen_at,
                beat.in_flight,
                beat.user_agent,
                beat.listener,
            ),
        )

    def alive(self, *, now: float, within: float = ALIVE_WITHIN) -> list[WorkerBeat]:
        rows = self._store.execute(
            "SELECT idx, pid, started_at, seen_at, in_flight, user_agent, listener FROM workers"
            " WHERE seen_at >= ? ORDER BY idx",
            (now - within,),
        )
        return [WorkerBeat(*row) for row in rows]

    def forget(self, index: int) -> None:
        """A worker stopping cleanly leaves the count at once."""
        self._store.execute("DELETE FROM workers WHERE idx = ?", (index,))
