"""KPI intervals in the tracker database (tables of migration 8): one row an interval, and each
worker's values in it, so the device API sums over workers and a restart keeps history.

Workers write absolute values for their own (interval, worker) rows (an upsert, never an
increment), so a repeated flush is harmless and a reader sums the latest of each worker.
Interval ids count up from 1 across restarts (AUTOINCREMENT never reuses one); every worker
opens an interval by its aligned start, and the UNIQUE start makes them agree on its id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sipbridge.tracker.store import TrackerStore


@dataclass(frozen=True)
class KpiInterval:
    id: int
    start: float
    end: float


class KpiLog:
    def __init__(self, store: TrackerStore) -> None:
        self._store = store

    def open_interval(self, start: float, end: float) -> KpiInterval:
        """The interval starting at `start`, created by whichever worker comes first."""
        # Not INSERT OR IGNORE: an ignored insert would still use up an AUTOINCREMENT id, and
        # the ids must count intervals. One statement, so two workers cannot both insert.
        self._store.execute(
            "INSERT INTO kpi_intervals (start, end) SELECT ?, ? "
            "WHERE NOT EXISTS (SELECT 1 FROM kpi_intervals WHERE start = ?)",
            (start, end, start),
        )
        [row] = self._store.execute(
            "SELECT id, start, end FROM kpi_intervals WHERE start = ?", (start,)
        )
        return KpiInterval(row[0], row[1], row[2])

    def intervals(self) -> list[KpiInterval]:
        """Every interval kept, oldest first."""
        rows = self._store.execute("SELECT id, start, end FROM kpi_intervals ORDER BY id")
        return [KpiInterval(r[0], r[1], r[2]) for r in rows]

    def write(self, interval: int, worker: int, values: Mapping[str, float]) -> None:
        """This worker's values in `interval`, as they are now (one transaction)."""
        rows = [(interval, worker, name, value) for name, value in values.items()]
        with self._store.transaction():
            self._store.execute_many(
                "INSERT INTO kpi_samples (interval, worker, name, value) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (interval, worker, name) DO UPDATE SET value = excluded.value",
                rows,
            )

    def worker_values(self, interval: int, worker: int) -> dict[str, float]:
        rows = self._store.execute(
            "SELECT name, value FROM kpi_samples WHERE interval = ? AND worker = ?",
            (interval, worker),
        )
        return {r[0]: r[1] for r in rows}

    def totals(self, interval: int, *, except_worker: int | None = None) -> dict[str, float]:
        """Each value of `interval` summed over workers (but `except_worker`, whose live values
        the caller adds itself)."""
        rows = self._store.execute(
            "SELECT name, SUM(value) FROM kpi_samples WHERE interval = ? AND worker != ? "
            "GROUP BY name",
            (interval, -1 if except_worker is None else except_worker),
        )
        return {r[0]: r[1] for r in rows}

    def series(self, name: str) -> dict[int, float]:
        """One value in every interval that has it, summed over workers."""
        rows = self._store.execute(
            "SELECT interval, SUM(value) FROM kpi_samples WHERE name = ? GROUP BY interval",
            (name,),
        )
        return {r[0]: r[1] for r in rows}

    def prune(self, keep: int) -> int:
        """Keep the newest `keep` intervals and their values; how many intervals went."""
        rows = self._store.execute(
            "SELECT id FROM kpi_intervals ORDER BY id DESC LIMIT 1 OFFSET ?", (keep - 1,)
        )
        if not rows:
            return 0
        oldest_kept = rows[0][0]
        with self._store.transaction():
            self._store.execute("DELETE FROM kpi_samples WHERE interval < ?", (oldest_kept,))
            gone = self._store.execute(
                "DELETE FROM kpi_intervals WHERE id < ? RETURNING id", (oldest_kept,)
            )
        return len(gone)
