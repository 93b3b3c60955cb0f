"""Pruning runs on the event loop every few seconds: its work must not grow with the table.

Counted in SQLite virtual-machine steps (a progress handler), not timed: a prune that finds
nothing to delete in a table of 100,000 rows must take no more steps than in one of 10,000
(the audit prune reads at most its batch, 5,000 rows, whatever the table holds).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from sipbridge.tracker import TrackerStore


def _steps(store: TrackerStore, prune: Callable[[TrackerStore], object]) -> int:
    """VM steps (in hundreds) `prune(store)` takes."""
    db: sqlite3.Connection = store._db
    counted = [0]

    def tick() -> int:
        counted[0] += 1
        return 0

    db.set_progress_handler(tick, 100)
    try:
        prune(store)
    finally:
        db.set_progress_handler(None, 100)
    return counted[0]


def _filled(rows: int) -> TrackerStore:
    store = TrackerStore(":memory:", clock=lambda: 1000.0)
    db = store._db
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO commands (at, source, outcome, reason) VALUES (?, 'http', 'ok', 'OK')",
        [(float(i),) for i in range(rows)],
    )
    db.executemany(
        "INSERT INTO audit (at, source, action, detail) VALUES (?, 's', 'forbidden', 'd')",
        [(999.0,) for _ in range(rows)],
    )
    db.execute("COMMIT")
    return store


def test_pruning_with_nothing_to_delete_does_not_scan_the_table() -> None:
    small, large = _filled(10_000), _filled(100_000)
    try:
        for prune in (
            lambda s: s.prune_command_log(1_000_000),
            lambda s: s.prune_audit(keep=1_000_000, max_age=3600),
        ):
            few, many = _steps(small, prune), _steps(large, prune)
            assert many <= few + 20, (few, many)
    finally:
        small.close()
        large.close()
