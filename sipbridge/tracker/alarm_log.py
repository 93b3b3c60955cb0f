"""The alarms sipbridge raises and clears, in the tracker database (tables `alarms_active` and
`alarm_history`, migration 8), so an alarm raised by any worker shows in all and the history
survives a restart (manual 004 section 9 keeps it only "since the last reboot").

One active row per alarm key; every change of the active table (raised, severity changed,
cleared) adds one history row, in the same transaction. Ids never come back (AUTOINCREMENT), so
a client's cursor never points at a different alarm. The newest history row says when the
active table last changed (`last_change`): pruning drops the oldest rows only.

Pages follow the manual's cursors (section 9.1): ascending ids, `after=X` gives ids above X,
`before=X` ids below X, and a cursor is None ("-1" on the wire) when nothing lies that way.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Literal

from sipbridge.errors import NotFound
from sipbridge.tracker.store import TrackerStore

SEVERITIES = ("critical", "major", "minor", "warning")
CLEARED = "cleared"

Table = Literal["active", "history"]

_COLUMNS = {
    "active": ("alarms_active", "changed_at"),
    "history": ("alarm_history", "at"),
}


@dataclass(frozen=True, kw_only=True)
class Alarm:
    """What a rule raises: `key` names the condition ("phone-unreachable:1001")."""

    key: str
    severity: str
    source: str
    description: str

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown alarm severity {self.severity!r}")


@dataclass(frozen=True, kw_only=True)
class AlarmRecord:
    """One row: an active alarm (`at` = when it took its severity) or a history entry."""

    id: int
    key: str
    severity: str
    source: str
    description: str
    at: float


@dataclass(frozen=True, kw_only=True)
class PageQuery:
    limit: int = 20
    after: int | None = None
    before: int | None = None


@dataclass(frozen=True, kw_only=True)
class Page:
    records: tuple[AlarmRecord, ...]
    after: int | None  # the cursor to the next page, None when there is none
    before: int | None  # the cursor to the previous page


def page_of(rows: list[AlarmRecord], *, limit: int, backwards: bool, more_behind: bool) -> Page:
    """A page from up to `limit + 1` rows read in walking order (descending ids when walking
    backwards): one row more than the limit says there is more ahead; `more_behind` whether
    rows lie on the other side of the page."""
    records = rows[:limit]
    more_ahead = len(rows) > limit
    if not records:
        return Page(records=(), after=None, before=None)
    if backwards:
        records.reverse()
        return Page(
            records=tuple(records),
            before=records[0].id if more_ahead else None,
            after=records[-1].id if more_behind else None,
        )
    return Page(
        records=tuple(records),
        after=records[-1].id if more_ahead else None,
        before=records[0].id if more_behind else None,
    )


def _record(row: sqlite3.Row) -> AlarmRecord:
    return AlarmRecord(
        id=row[0], key=row[1], severity=row[2], source=row[3], description=row[4], at=row[5]
    )


class AlarmLog:
    """Raise, clear and read the alarms in `store`; history kept at `history_max_rows`."""

    def __init__(self, store: TrackerStore, *, history_max_rows: int) -> None:
        self._store = store
        self._keep = history_max_rows

    def raise_alarm(self, alarm: Alarm) -> bool:
        """Raise `alarm`; False (and no history row) when its key is active with its severity."""
        store = self._store
        with store.transaction():
            now = store.now()
            rows = store.execute("SELECT severity FROM alarms_active WHERE key = ?", (alarm.key,))
            if rows and rows[0][0] == alarm.severity:
                return False
            if rows:
                store.execute(
                    "UPDATE alarms_active SET severity = ?, source = ?, description = ?, "
                    "changed_at = ? WHERE key = ?",
                    (alarm.severity, alarm.source, alarm.description, now, alarm.key),
                )
            else:
                store.execute(
                    "INSERT INTO alarms_active (key, severity, source, description, raised_at, "
                    "changed_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (alarm.key, alarm.severity, alarm.source, alarm.description, now, now),
                )
            self._history(alarm.key, alarm.severity, alarm.source, alarm.description, now)
        return True

    def clear_alarm(self, key: str) -> bool:
        """Clear the alarm `key`: False when it was not active."""
        store = self._store
        with store.transaction():
            rows = store.execute(
                "DELETE FROM alarms_active WHERE key = ? RETURNING source, description", (key,)
            )
            if not rows:
                return False
            self._history(key, CLEARED, rows[0][0], rows[0][1], store.now())
        return True

    def _history(self, key: str, severity: str, source: str, description: str, at: float) -> None:
        self._store.execute(
            "INSERT INTO alarm_history (key, severity, source, description, at) "
            "VALUES (?, ?, ?, ?, ?)",
            (key, severity, source, description, at),
        )
        # Oldest first; on the primary key, so one insert costs one short delete.
        self._store.execute(
            "DELETE FROM alarm_history WHERE id <= (SELECT MAX(id) FROM alarm_history) - ?",
            (self._keep,),
        )

    def active_keys(self) -> dict[str, str]:
        """Every active alarm's key and severity (the rules' view of what is raised)."""
        rows = self._store.execute("SELECT key, severity FROM alarms_active")
        return {row[0]: row[1] for row in rows}

    def last_change(self) -> float | None:
        """When the active table last changed: its newest history row."""
        rows = self._store.execute("SELECT MAX(at) FROM alarm_history")
        return None if rows[0][0] is None else float(rows[0][0])

    def page(self, table: Table, query: PageQuery) -> Page:
        name, at = _COLUMNS[table]
        select = f"SELECT id, key, severity, source, description, {at} FROM {name}"
        backwards = query.before is not None
        if backwards:
            rows = self._store.execute(
                f"{select} WHERE id < ? ORDER BY id DESC LIMIT ?", (query.before, query.limit + 1)
            )
        else:
            after = query.after if query.after is not None else 0
            rows = self._store.execute(
                f"{select} WHERE id > ? ORDER BY id LIMIT ?", (after, query.limit + 1)
            )
        records = [_record(row) for row in rows]
        more_behind = False
        if records:
            edge = records[0].id
            beyond = "id > ?" if backwards else "id < ?"
            more_behind = bool(
                self._store.execute(f"SELECT 1 FROM {name} WHERE {beyond} LIMIT 1", (edge,))
            )
        return page_of(records, limit=query.limit, backwards=backwards, more_behind=more_behind)

    def get(self, table: Table, alarm_id: int) -> AlarmRecord:
        name, at = _COLUMNS[table]
        rows = self._store.execute(
            f"SELECT id, key, severity, source, description, {at} FROM {name} WHERE id = ?",
            (alarm_id,),
        )
        if not rows:
            raise NotFound(f"no {table} alarm {alarm_id}")
        return _record(rows[0])
