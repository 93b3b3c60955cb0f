"""The tracker's SQLite store: phones and calls that survive a restart.

WAL mode with `synchronous=NORMAL`: a committed write survives a crash of the process (the case
that matters for a service); only a power loss can drop the last commits (SQLite docs, "WAL").
The clock is passed in so expiry is testable without sleeping.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from sipbridge.errors import StoreError, UnknownCall, UnknownPhone
from sipbridge.tracker.models import (
    Call,
    CallState,
    CommandLogEntry,
    LearnedFrom,
    Phone,
    SipTransport,
)

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# WAL checkpoints run on a thread of their own (`_Checkpointer`), every CHECKPOINT_EVERY seconds.
# Left to SQLite, a checkpoint runs inside whichever commit crosses 1,000 WAL pages, with an
# fsync, on the event loop: 40-50 us per command on average and the 10 ms spikes of p99
# (docs/performance.md). The connection that serves requests keeps a far higher threshold as a
# backstop, should the thread ever fall behind.
CHECKPOINT_EVERY = 0.5
_BACKSTOP_CHECKPOINT_PAGES = 20_000

_PHONE_COLUMNS = (
    "id, aor, contact, transport, user_agent, registered_until, updated_at, "
    "learned_from, received, registration_call_id, registration_cseq, profile"
)
_PHONE_FIELDS = tuple(name.strip() for name in _PHONE_COLUMNS.split(","))
_PHONE_SLOTS = ", ".join("?" * len(_PHONE_FIELDS))
_CALL_COLUMNS = "call_id, phone_id, state, first_seen, updated_at"
_CALL_FIELDS = tuple(name.strip() for name in _CALL_COLUMNS.split(","))

# The command log's columns after its id (migrations 4 and 5 create the table with them).
_COMMAND_LOG_COLUMNS = """
    at          REAL NOT NULL,
    source      TEXT NOT NULL,
    phone_id    TEXT,
    call_id     TEXT,
    command_uri TEXT,
    transport   TEXT,
    outcome     TEXT NOT NULL,
    status      INTEGER,
    reason      TEXT NOT NULL,
    latency_ms  REAL
"""

# Schema migrations, applied in order; `PRAGMA user_version` records how many ran. Append only:
# a database written by an older sipbridge is brought up to date at open.
_MIGRATIONS: tuple[str, ...] = (
    """
CREATE TABLE IF NOT EXISTS phones (
    id               TEXT PRIMARY KEY,
    aor              TEXT NOT NULL,
    contact          TEXT NOT NULL,
    transport        TEXT NOT NULL,
    user_agent       TEXT,
    registered_until REAL NOT NULL,
    updated_at       REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    call_id    TEXT PRIMARY KEY,
    phone_id   TEXT NOT NULL REFERENCES phones(id) ON DELETE CASCADE,
    state      TEXT NOT NULL,
    first_seen REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_by_phone ON calls(phone_id);
""",
    # Where a registration came from (http feed, a REGISTER, a registrar's reginfo), the source
    # address and Call-ID of the REGISTER, and a profile pinned by the operator.
    """
ALTER TABLE phones ADD COLUMN learned_from TEXT NOT NULL DEFAULT 'http';
ALTER TABLE phones ADD COLUMN received TEXT;
ALTER TABLE phones ADD COLUMN registration_call_id TEXT;
ALTER TABLE phones ADD COLUMN profile TEXT;
""",
    # The CSeq of the last REGISTER (RFC 3261 §10.3 step 7 orders refreshes by it), and an audit
    # trail of what the SIP listener refused and why.
    """
ALTER TABLE phones ADD COLUMN registration_cseq INTEGER;
CREATE TABLE IF NOT EXISTS audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     REAL NOT NULL,
    source TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
""",
    # Every command, from any entry (HTTP API, SIP relay), and how it ended.
    "CREATE TABLE IF NOT EXISTS commands (\n    id          INTEGER PRIMARY KEY AUTOINCREMENT,"
    + _COMMAND_LOG_COLUMNS
    + ");\n",
    # The command log without AUTOINCREMENT: its bookkeeping row in sqlite_sequence was one more
    # page written by every command's commit (about half a logged insert, docs/performance.md). Ids
    # still never repeat: pruning deletes only the oldest rows and keeps at least 1,000, so the
    # largest id, from which SQLite picks the next, never goes down (SQLite docs, "Autoincrement").
    "CREATE TABLE commands_v5 (\n    id          INTEGER PRIMARY KEY,"
    + _COMMAND_LOG_COLUMNS
    + """);
INSERT INTO commands_v5
    SELECT id, at, source, phone_id, call_id, command_uri, transport, outcome, status, reason,
           latency_ms
    FROM commands;
DROP TABLE commands;
ALTER TABLE commands_v5 RENAME TO commands;
""",
    # Phones and calls keyed by their text keys alone (WITHOUT ROWID): a lookup by Call-ID or
    # phone id descends one B-tree instead of the key's index and then the table, so `locate`
    # reads two trees, not four (about a fifth faster at 100,000 calls; docs/performance.md).
    # Rebuilt the SQLite way ("ALTER TABLE", other schema changes) with foreign keys off: with
    # them on, dropping the old phones would cascade into the new calls (`_migrate`).
    """
CREATE TABLE phones_v6 (
    id                   TEXT PRIMARY KEY,
    aor                  TEXT NOT NULL,
    contact              TEXT NOT NULL,
    transport            TEXT NOT NULL,
    user_agent           TEXT,
    registered_until     REAL NOT NULL,
    updated_at           REAL NOT NULL,
    learned_from         TEXT NOT NULL DEFAULT 'http',
    received             TEXT,
    registration_call_id TEXT,
    registration_cseq    INTEGER,
    profile              TEXT
) WITHOUT ROWID;
INSERT INTO phones_v6 SELECT """
    + _PHONE_COLUMNS
    + """ FROM phones;
CREATE TABLE calls_v6 (
    call_id    TEXT PRIMARY KEY,
    phone_id   TEXT NOT NULL REFERENCES phones(id) ON DELETE CASCADE,
    state      TEXT NOT NULL,
    first_seen REAL NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
INSERT INTO calls_v6 SELECT """
    + _CALL_COLUMNS
    + """ FROM calls;
DROP TABLE calls;
DROP TABLE phones;
ALTER TABLE phones_v6 RENAME TO phones;
ALTER TABLE calls_v6 RENAME TO calls;
CREATE INDEX calls_by_phone ON calls(phone_id);
""",
    # A 504 says whether the command left; one that had left is answered later (or times out
    # for good), and that late outcome is written onto its entry (`record_late_outcome`).
    """
ALTER TABLE commands ADD COLUMN sent INTEGER;
ALTER TABLE commands ADD COLUMN late_outcome TEXT;
ALTER TABLE commands ADD COLUMN late_status INTEGER;
ALTER TABLE commands ADD COLUMN late_reason TEXT;
ALTER TABLE commands ADD COLUMN late_latency_ms REAL;
""",
    # The device API (manual 004): its users and the front-API keys with their levels (hashes
    # only, tracker/credentials.py), the alarms sipbridge raises (tracker/alarm_log.py) and the
    # KPI intervals of every worker (tracker/kpi_log.py); each worker's heartbeat (status).
    """
CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    level         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE api_keys (
    name       TEXT PRIMARY KEY,
    level      TEXT NOT NULL,
    key_hash   TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE alarms_active (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    key         TEXT NOT NULL UNIQUE,
    severity    TEXT NOT NULL,
    source      TEXT NOT NULL,
    description TEXT NOT NULL,
    raised_at   REAL NOT NULL,
    changed_at  REAL NOT NULL
);
CREATE TABLE alarm_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    key         TEXT NOT NULL,
    severity    TEXT NOT NULL,
    source      TEXT NOT NULL,
    description TEXT NOT NULL,
    at          REAL NOT NULL
);
CREATE TABLE workers (
    idx        INTEGER PRIMARY KEY,
    pid        INTEGER NOT NULL,
    started_at REAL NOT NULL,
    seen_at    REAL NOT NULL,
    in_flight  INTEGER NOT NULL,
    user_agent TEXT,
    listener   TEXT
);
CREATE TABLE kpi_intervals (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    start REAL NOT NULL UNIQUE,
    end   REAL NOT NULL
);
CREATE TABLE kpi_samples (
    interval INTEGER NOT NULL,
    worker   INTEGER NOT NULL,
    name     TEXT NOT NULL,
    value    REAL NOT NULL,
    PRIMARY KEY (interval, worker, name)
) WITHOUT ROWID;
""",
    # The event log (tracker/event_log.py): every change the tracker makes and every command's
    # end, written in the same transaction as the change. Ids only grow: pruning keeps the
    # newest row, so SQLite's next id (max + 1) never goes back.
    """
CREATE TABLE events (
    id           INTEGER PRIMARY KEY,
    at           REAL NOT NULL,
    type         TEXT NOT NULL,
    phone        TEXT,
    call_id      TEXT,
    sequence     INTEGER,
    data         TEXT NOT NULL,
    client_state TEXT
);
CREATE INDEX events_by_call ON events(call_id, sequence) WHERE call_id IS NOT NULL;
""",
    # Idempotency-Key records (tracker/idempotency.py): the first answer to a command POST,
    # replayed to a retry with the same key and body, across workers and restarts.
    """
CREATE TABLE idempotency (
    owner        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    created_at   REAL NOT NULL,
    status       INTEGER,
    headers      TEXT,
    body         BLOB,
    PRIMARY KEY (owner, key)
) WITHOUT ROWID;
""",
    # Asynchronous commands (`Prefer: respond-async`, api/async_commands.py): their state and,
    # once they end, the answer the synchronous request would have had.
    """
CREATE TABLE async_commands (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    worker      INTEGER NOT NULL,
    created_at  REAL NOT NULL,
    state       TEXT NOT NULL,
    http_status INTEGER,
    body        BLOB,
    ended_at    REAL
);
""",
    # Webhooks (tracker/webhook_store.py): the subscriptions, one cursor into the event log, and
    # the outbox of deliveries, each holding its payload so event pruning cannot lose it.
    """
CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    types      TEXT NOT NULL,
    phone      TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE webhook_cursor (
    only     INTEGER PRIMARY KEY CHECK (only = 0),
    event_id INTEGER NOT NULL
);
CREATE TABLE webhook_deliveries (
    id           INTEGER PRIMARY KEY,
    webhook_id   TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    message_id   TEXT NOT NULL,
    event_id     INTEGER,
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL,
    tries        INTEGER NOT NULL DEFAULT 0,
    next_at      REAL NOT NULL,
    created_at   REAL NOT NULL,
    last_at      REAL,
    last_status  INTEGER,
    last_error   TEXT,
    latency_ms   REAL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_by_hook ON webhook_deliveries(webhook_id, id);
""",
)

# (state before, state after) -> the event a call change is; (None, state): a call first seen.
CALL_EVENTS: dict[tuple[str | None, str], str] = {
    (None, "ringing"): "call.ringing",
    (None, "connected"): "call.connected",
    (None, "held"): "call.held",
    ("ringing", "connected"): "call.connected",
    ("connected", "held"): "call.held",
    ("held", "connected"): "call.resumed",
}

_LOCATE = (
    "SELECT "
    + ", ".join(f"c.{name}" for name in _CALL_FIELDS)
    + ", "
    + ", ".join(f"p.{name}" for name in _PHONE_FIELDS)
    + " FROM calls AS c LEFT JOIN phones AS p ON p.id = c.phone_id WHERE c.call_id = ?"
)


class _Translated:
    """sqlite3 errors raised inside become StoreError (the one error hierarchy, errors.py).

    A class, not a generator context manager: it wraps every statement, six a command, and
    `contextlib.contextmanager` costs a generator and several calls each time."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"tracker database error: {exc}") from exc


_TRANSLATED = _Translated()


def _phone(values: Sequence[Any]) -> Phone:
    """A phone from a row whose first columns are _PHONE_COLUMNS, in that order."""
    return Phone(
        id=values[0],
        aor=values[1],
        contact=values[2],
        transport=values[3],
        user_agent=values[4],
        registered_until=values[5],
        updated_at=values[6],
        learned_from=values[7],
        received=values[8],
        registration_call_id=values[9],
        registration_cseq=values[10],
        profile=values[11],
    )


def _call(values: Sequence[Any]) -> Call:
    """A call from a row whose first columns are _CALL_COLUMNS, in that order."""
    return Call(
        call_id=values[0],
        phone_id=values[1],
        state=values[2],
        first_seen=values[3],
        updated_at=values[4],
    )


def _private_files(path: Path) -> None:
    """The database, its WAL and its shared-memory file readable by sipbridge's user alone.

    They hold every phone's contact and the command log. SQLite creates a new database 0644
    (less the umask) and gives its -wal and -shm files the database's own mode, so the file is
    made 0600 here before SQLite opens it. A directory the admin made is left as it is (it may
    be shared on purpose) but a loose one is logged; files of ours with group or other bits
    set are fixed, and logged.
    """
    directory = path.parent
    if directory.is_dir():
        mode = directory.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning(
                "data directory %s is open to others (mode %o): chmod 700 it", directory, mode
            )
    else:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreError(f"cannot create the tracker database {path}: {exc.strerror}") from exc
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = name.stat().st_mode & 0o777
            if mode & 0o077:
                name.chmod(0o600)
                log.warning("%s was open to others (mode %o): made it 600", name, mode)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StoreError(f"cannot restrict {name}: {exc.strerror}") from exc


class KeepPin:
    """Marker: leave the phone's pinned profile as it is."""


KEEP_PIN = KeepPin()


class TrackerStore:
    """Phones and calls in one SQLite file (or `:memory:` in unit tests)."""

    def __init__(self, path: Path | str, *, clock: Clock = time.time) -> None:
        self._clock = clock
        if isinstance(path, Path):
            _private_files(path)
        with _TRANSLATED:
            self._db = sqlite3.connect(str(path), isolation_level=None)
            self._db.row_factory = sqlite3.Row
            # Plain tuples for the hottest read (locate): no sqlite3.Row to build and read back.
            self._plain = self._db.cursor()
            self._plain.row_factory = None
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
            self._db.execute("PRAGMA foreign_keys=ON")
        self._checkpointer: _Checkpointer | None = None
        if str(path) != ":memory:":
            with _TRANSLATED:
                self._db.execute(f"PRAGMA wal_autocheckpoint={_BACKSTOP_CHECKPOINT_PAGES}")
            self._checkpointer = _Checkpointer(str(path))

    def _migrate(self) -> None:
        """Bring the schema up to date; runs before foreign keys are switched on, as SQLite's
        procedure for rebuilding a table asks, and commits each step only if they still hold."""
        done = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        for version, script in enumerate(_MIGRATIONS[done:], start=done + 1):
            if done:  # an existing database: a rebuild can take a while on a large one
                log.info("tracker database: applying schema migration %d", version)
            # executescript commits first; the script and the version bump commit together,
            # and only if every call still has its phone.
            self._db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {version};")
            if self._db.execute("PRAGMA foreign_key_check").fetchone():
                self._db.execute("ROLLBACK")
                raise StoreError(
                    f"schema migration {version} refused: the tracker database has calls on "
                    "phones it does not know"
                )
            self._db.execute("COMMIT")

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        with _TRANSLATED:
            self._db.close()

    def now(self) -> float:
        return self._clock()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The writes inside commit together, or none of them if the block raises (a batch).

        The connection is in autocommit mode, so each single write is its own transaction;
        `BEGIN IMMEDIATE` takes the write lock up front so the batch cannot fail half way on it.
        """
        with _TRANSLATED:
            self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with _TRANSLATED:
                self._db.execute("ROLLBACK")
            raise
        try:
            with _TRANSLATED:
                self._db.execute("COMMIT")
        except StoreError:
            # A failed COMMIT (disk full, I/O error) can leave the transaction open; every
            # later BEGIN would then fail and single writes would silently join it.
            if self._db.in_transaction:
                with _TRANSLATED:
                    self._db.execute("ROLLBACK")
            raise

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """A change and its events commit together: a SAVEPOINT, which nests inside a batch
        (`transaction`, the group commit) and is its own transaction outside one."""
        with _TRANSLATED:
            self._db.execute("SAVEPOINT change")
        try:
            yield
        except BaseException:
            with _TRANSLATED:
                self._db.execute("ROLLBACK TO change")
                self._db.execute("RELEASE change")
            raise
        with _TRANSLATED:
            self._db.execute("RELEASE change")

    def _emit(
        self,
        kind: str,
        *,
        phone: str | None,
        call_id: str | None = None,
        data: dict[str, Any] | None = None,
        client_state: str | None = None,
    ) -> None:
        """Append one event (inside the caller's `_atomic`)."""
        sequence = None
        if call_id is not None:
            sequence = self._db.execute(
                "SELECT coalesce(max(sequence), 0) + 1 FROM events WHERE call_id = ?", (call_id,)
            ).fetchone()[0]
        self._db.execute(
            "INSERT INTO events (at, type, phone, call_id, sequence, data, client_state) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                self.now(),
                kind,
                phone,
                call_id,
                sequence,
                json.dumps(data or {}, separators=(",", ":")),
                client_state,
            ),
        )

    def record_event(self, kind: str, **fields: Any) -> None:
        """An event that comes with no tracker change of its own (a command queued); `fields`
        as `_emit` takes them."""
        with self._atomic(), _TRANSLATED:
            self._emit(kind, **fields)

    def _calls_of(self, phone_ids: Sequence[str]) -> list[tuple[str, str]]:
        """(call_id, phone_id) of the calls those phones hold (they end with the phone)."""
        if not phone_ids:
            return []
        slots = ", ".join("?" * len(phone_ids))
        rows = self._db.execute(
            f"SELECT call_id, phone_id FROM calls WHERE phone_id IN ({slots})", tuple(phone_ids)
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """One statement on a table another tracker module owns (credentials, alarms, KPIs:
        each keeps its SQL beside its model); its rows, sqlite3 errors as StoreError."""
        with _TRANSLATED:
            return self._db.execute(sql, params).fetchall()

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with _TRANSLATED:
            self._db.executemany(sql, rows)

    # -- phones ------------------------------------------------------------------------------

    def register_phone(
        self,
        phone_id: str,
        *,
        contact: str,
        transport: SipTransport,
        expires: float,
        aor: str,
        user_agent: str | None = None,
        learned_from: LearnedFrom = "http",
        received: str | None = None,
        registration_call_id: str | None = None,
        registration_cseq: int | None = None,
        profile: str | KeepPin | None = KEEP_PIN,
    ) -> Phone:
        """Create or refresh a registration; `expires` is seconds from now (RFC 3261 §10.2.1).

        `profile`: a name pins it, None removes the pin, KEEP_PIN (the default) keeps whatever
        the operator pinned before — a refresh from a REGISTER must not drop a pin.
        """
        keep_pin = isinstance(profile, KeepPin)
        now = self.now()
        with self._atomic(), _TRANSLATED:
            before = self._db.execute(
                "SELECT registered_until, user_agent, profile FROM phones WHERE id = ?",
                (phone_id,),
            ).fetchone()
            # The kept pin is read and written by SQLite itself, and RETURNING gives back the
            # row as stored.
            row = self._db.execute(
                f"INSERT INTO phones ({_PHONE_COLUMNS}) VALUES ({_PHONE_SLOTS}) "
                "ON CONFLICT(id) DO UPDATE SET aor=excluded.aor, contact=excluded.contact, "
                "transport=excluded.transport, user_agent=excluded.user_agent, "
                "registered_until=excluded.registered_until, updated_at=excluded.updated_at, "
                "learned_from=excluded.learned_from, received=excluded.received, "
                "registration_call_id=excluded.registration_call_id, "
                "registration_cseq=excluded.registration_cseq, "
                "profile=CASE WHEN ? THEN phones.profile ELSE excluded.profile END "
                f"RETURNING {_PHONE_COLUMNS}",
                (
                    phone_id,
                    aor,
                    contact,
                    transport,
                    user_agent,
                    now + expires,
                    now,
                    learned_from,
                    received,
                    registration_call_id,
                    registration_cseq,
                    None if isinstance(profile, KeepPin) else profile,
                    keep_pin,
                ),
            ).fetchone()
            stored = _phone(row)
            if before is None or before["registered_until"] <= now:
                self._emit(
                    "phone.registered",
                    phone=phone_id,
                    data={
                        "contact": contact,
                        "transport": transport,
                        "user_agent": user_agent,
                        "learned_from": learned_from,
                        "expires": expires,
                    },
                )
            elif (before["user_agent"], before["profile"]) != (stored.user_agent, stored.profile):
                self._emit(
                    "phone.profile_changed",
                    phone=phone_id,
                    data={
                        "user_agent": stored.user_agent,
                        "profile": stored.profile,
                        "previous_user_agent": before["user_agent"],
                        "previous_profile": before["profile"],
                    },
                )
        return stored

    def remove_phone(self, phone_id: str) -> bool:
        """Forget a phone and the calls it held."""
        with self._atomic(), _TRANSLATED:
            calls = self._calls_of([phone_id])
            cursor = self._db.execute("DELETE FROM phones WHERE id = ?", (phone_id,))
            if cursor.rowcount > 0:
                self._ended(calls, reason="phone unregistered")
                self._emit("phone.unregistered", phone=phone_id)
        return cursor.rowcount > 0

    def _ended(self, calls: Sequence[tuple[str, str]], *, reason: str) -> None:
        for call_id, phone_id in calls:
            self._emit("call.ended", phone=phone_id, call_id=call_id, data={"reason": reason})

    def phone(self, phone_id: str) -> Phone:
        """A registered phone; an expired registration no longer resolves."""
        with _TRANSLATED:
            row = self._db.execute(
                f"SELECT {_PHONE_COLUMNS} FROM phones WHERE id = ? AND registered_until > ?",
                (phone_id, self.now()),
            ).fetchone()
        if row is None:
            raise UnknownPhone(f"no registered phone {phone_id!r}")
        return _phone(row)

    def phones(self) -> list[Phone]:
        with _TRANSLATED:
            rows = self._db.execute(
                f"SELECT {_PHONE_COLUMNS} FROM phones WHERE registered_until > ? ORDER BY id",
                (self.now(),),
            ).fetchall()
        return [_phone(row) for row in rows]

    def counts(self) -> tuple[int, int]:
        """(phones registered now, calls tracked): the device API's status."""
        with _TRANSLATED:
            row = self._db.execute(
                "SELECT (SELECT count(*) FROM phones WHERE registered_until > ?),"
                " (SELECT count(*) FROM calls)",
                (self.now(),),
            ).fetchone()
        return int(row[0]), int(row[1])

    def registration(self, phone_id: str) -> Phone | None:
        """The phone's record even if expired (the registrar orders refreshes by it)."""
        with _TRANSLATED:
            row = self._db.execute(
                f"SELECT {_PHONE_COLUMNS} FROM phones WHERE id = ?", (phone_id,)
            ).fetchone()
        return None if row is None else _phone(row)

    def purge_expired(self) -> list[str]:
        """Forget registrations that have run out, with their calls; returns their ids."""
        with self._atomic(), _TRANSLATED:
            expired = [
                row[0]
                for row in self._db.execute(
                    "SELECT id FROM phones WHERE registered_until <= ?", (self.now(),)
                ).fetchall()
            ]
            if not expired:
                return []
            calls = self._calls_of(expired)
            slots = ", ".join("?" * len(expired))
            self._db.execute(f"DELETE FROM phones WHERE id IN ({slots})", tuple(expired))
            self._ended(calls, reason="registration expired")
            for phone_id in expired:
                self._emit("phone.expired", phone=phone_id)
        return sorted(expired)

    def audit(self, source: str, action: str, detail: str) -> None:
        with _TRANSLATED:
            self._db.execute(
                "INSERT INTO audit (at, source, action, detail) VALUES (?, ?, ?, ?)",
                (self.now(), source, action, detail),
            )

    def prune_audit(self, *, keep: int, max_age: float, at_most: int = 5_000) -> int:
        """Delete audit rows older than `max_age` seconds or beyond the newest `keep`, at most
        `at_most` of them (a short write beside live traffic); returns how many went.

        Rows are appended with the clock, so the oldest ids are the oldest rows: both rules
        delete a prefix by id, through the primary key, without an index on `at`.
        """
        with _TRANSLATED:
            # Two subqueries: SQLite reads min() or max() off the key only when each is alone
            # in its SELECT; together they scan the table (13 ms at 200,000 rows).
            newest, oldest = self._db.execute(
                "SELECT (SELECT max(id) FROM audit), (SELECT min(id) FROM audit)"
            ).fetchone()
            if newest is None:
                return 0
            below = oldest
            if newest - oldest >= keep:
                below = newest - keep + 1
            cutoff = self.now() - max_age
            row = self._db.execute(
                "SELECT max(id) FROM (SELECT id, at FROM audit ORDER BY id LIMIT ?) WHERE at < ?",
                (at_most, cutoff),
            ).fetchone()
            if row[0] is not None:
                below = max(below, row[0] + 1)
            below = min(below, oldest + at_most)
            if below <= oldest:
                return 0
            cursor = self._db.execute("DELETE FROM audit WHERE id < ?", (below,))
        return cursor.rowcount

    def audit_count(self) -> int:
        with _TRANSLATED:
            return int(self._db.execute("SELECT count(*) FROM audit").fetchone()[0])

    def audit_records(self, limit: int = 100) -> list[tuple[float, str, str, str]]:
        with _TRANSLATED:
            rows = self._db.execute(
                "SELECT at, source, action, detail FROM audit ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [(r["at"], r["source"], r["action"], r["detail"]) for r in rows]

    def log_command(self, entry: CommandLogEntry) -> int:
        """Append `entry`, and its command.completed / command.failed event; returns its id."""
        with self._atomic(), _TRANSLATED:
            cursor = self._db.execute(
                "INSERT INTO commands (at, source, phone_id, call_id, command_uri, transport, "
                "outcome, status, reason, latency_ms, sent) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.now(),
                    entry.source,
                    entry.phone_id,
                    entry.call_id,
                    entry.command_uri,
                    entry.transport,
                    entry.outcome,
                    entry.status,
                    entry.reason,
                    entry.latency_ms,
                    entry.sent,
                ),
            )
            entry_id = int(cursor.lastrowid or 0)
            self._emit(
                "command.completed" if entry.outcome == "ok" else "command.failed",
                phone=entry.phone_id,
                call_id=entry.call_id,
                data={
                    "command_id": entry_id,
                    "command_uri": entry.command_uri,
                    "transport": entry.transport,
                    "outcome": entry.outcome,
                    "status": entry.status,
                    "reason": entry.reason,
                    "latency_ms": entry.latency_ms,
                    "sent": entry.sent,
                },
                client_state=entry.client_state,
            )
        return entry_id

    def record_late_outcome(
        self,
        entry_id: int,
        *,
        outcome: str,
        status: int | None,
        reason: str,
        latency_ms: float | None,
    ) -> None:
        """How a command that had timed out for its caller really ended (entry `entry_id`)."""
        with _TRANSLATED:
            self._db.execute(
                "UPDATE commands SET late_outcome = ?, late_status = ?, late_reason = ?, "
                "late_latency_ms = ? WHERE id = ?",
                (outcome, status, reason, latency_ms, entry_id),
            )

    def prune_command_log(self, keep: int, *, at_most: int = 5_000) -> int:
        """Delete the oldest entries beyond the newest `keep`, at most `at_most` of them (a
        short write: it runs beside live traffic); returns how many went."""
        with _TRANSLATED:
            # Two subqueries, read off the key; one SELECT of both scans the table (107 ms on
            # the event loop every second at a million rows).
            newest, oldest = self._db.execute(
                "SELECT (SELECT max(id) FROM commands), (SELECT min(id) FROM commands)"
            ).fetchone()
            if newest is None or newest - oldest < keep:
                return 0
            below = min(newest - keep + 1, oldest + at_most)
            cursor = self._db.execute("DELETE FROM commands WHERE id < ?", (below,))
        return cursor.rowcount

    def command_log(self, *, limit: int = 100, before: int | None = None) -> list[CommandLogEntry]:
        """Newest first; `before` is the id of the last entry of the previous page."""
        with _TRANSLATED:
            rows = self._db.execute(
                "SELECT * FROM commands WHERE id < ? ORDER BY id DESC LIMIT ?",
                (before if before is not None else 2**62, limit),
            ).fetchall()
        return [
            CommandLogEntry(
                id=row["id"],
                at=row["at"],
                source=row["source"],
                phone_id=row["phone_id"],
                call_id=row["call_id"],
                command_uri=row["command_uri"],
                transport=row["transport"],
                outcome=row["outcome"],
                status=row["status"],
                reason=row["reason"],
                latency_ms=row["latency_ms"],
                sent=None if row["sent"] is None else bool(row["sent"]),
                late_outcome=row["late_outcome"],
                late_status=row["late_status"],
                late_reason=row["late_reason"],
                late_latency_ms=row["late_latency_ms"],
            )
            for row in rows
        ]

    # -- calls -------------------------------------------------------------------------------

    def record_call(self, call_id: str, *, phone_id: str, state: CallState) -> Call:
        """Record that `phone_id` holds `call_id`; keeps first_seen on a repeat."""
        self.phone(phone_id)  # the phone must be registered
        now = self.now()
        with self._atomic(), _TRANSLATED:
            before = self._db.execute(
                "SELECT phone_id, state FROM calls WHERE call_id = ?", (call_id,)
            ).fetchone()
            self._db.execute(
                f"INSERT INTO calls ({_CALL_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(call_id) DO UPDATE SET phone_id=excluded.phone_id, "
                "state=excluded.state, updated_at=excluded.updated_at",
                (call_id, phone_id, state, now, now),
            )
            if before is not None and before["phone_id"] != phone_id:
                self._ended([(call_id, before["phone_id"])], reason=f"moved to {phone_id}")
                before = None
            self._changed(call_id, phone_id, None if before is None else before["state"], state)
        return self.call(call_id)

    def _changed(
        self,
        call_id: str,
        phone_id: str,
        before: str | None,
        after: str,
        client_state: str | None = None,
    ) -> None:
        """The call event a state change is (docs/events.md): nothing when nothing changed."""
        if before == after:
            return
        kind = CALL_EVENTS.get((before, after)) or CALL_EVENTS.get((None, after), "call." + after)
        data = {"state": after, "previous_state": before}
        self._emit(kind, phone=phone_id, call_id=call_id, data=data, client_state=client_state)

    def set_call_state(
        self, call_id: str, state: CallState, *, client_state: str | None = None
    ) -> None:
        with self._atomic(), _TRANSLATED:
            before = self._db.execute(
                "SELECT phone_id, state FROM calls WHERE call_id = ?", (call_id,)
            ).fetchone()
            if before is None:
                return
            self._db.execute(
                "UPDATE calls SET state = ?, updated_at = ? WHERE call_id = ?",
                (state, self.now(), call_id),
            )
            self._changed(call_id, before["phone_id"], before["state"], state, client_state)

    def remove_call(self, call_id: str, *, client_state: str | None = None) -> bool:
        with self._atomic(), _TRANSLATED:
            rows = self._db.execute(
                "DELETE FROM calls WHERE call_id = ? RETURNING phone_id", (call_id,)
            ).fetchall()
            for row in rows:
                self._emit(
                    "call.ended",
                    phone=row[0],
                    call_id=call_id,
                    data={"reason": "ended"},
                    client_state=client_state,
                )
        return bool(rows)

    def call(self, call_id: str) -> Call:
        with _TRANSLATED:
            row = self._db.execute(
                f"SELECT {_CALL_COLUMNS} FROM calls WHERE call_id = ?", (call_id,)
            ).fetchone()
        if row is None:
            raise UnknownCall(f"no tracked call {call_id!r}")
        return _call(row)

    def calls(self, *, phone_id: str | None = None) -> list[Call]:
        query = f"SELECT {_CALL_COLUMNS} FROM calls"
        params: tuple[str, ...] = ()
        if phone_id is not None:
            query += " WHERE phone_id = ?"
            params = (phone_id,)
        with _TRANSLATED:
            rows = self._db.execute(query + " ORDER BY first_seen, call_id", params).fetchall()
        return [_call(row) for row in rows]

    def locate(self, call_id: str) -> tuple[Call, Phone]:
        """The call and the registered phone holding it: what every call action starts from.

        One indexed join, not two lookups: it runs on every call action."""
        with _TRANSLATED:
            values = self._plain.execute(_LOCATE, (call_id,)).fetchone()
        if values is None:
            raise UnknownCall(f"no tracked call {call_id!r}")
        call = _call(values)
        # LEFT JOIN: the phone's columns are all NULL when there is no phone row at all.
        phone = None if values[len(_CALL_FIELDS)] is None else _phone(values[len(_CALL_FIELDS) :])
        if phone is None or not phone.is_registered(self.now()):
            raise UnknownPhone(
                f"call {call_id!r} is on phone {call.phone_id!r}, which is not registered"
            )
        return call, phone


class _Checkpointer:
    """Copies the WAL back into the database file from its own thread and connection.

    A PASSIVE checkpoint never blocks the writers (SQLite docs, "wal_checkpoint"), and the
    sqlite3 module releases the GIL while SQLite works, so the fsync no longer stalls requests.
    """

    def __init__(self, path: str, every: float = CHECKPOINT_EVERY) -> None:
        self._path = path
        self._every = every
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            log.error("WAL checkpointer cannot open %s: %s", self._path, exc)
            return
        try:
            while not self._stopping.wait(self._every):
                self._checkpoint(db, "PASSIVE")
            self._checkpoint(db, "TRUNCATE")  # leave a short WAL behind at shutdown
        finally:
            db.close()

    @staticmethod
    def _checkpoint(db: sqlite3.Connection, mode: str) -> None:
        try:
            db.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error as exc:  # busy or locked: the next round tries again
            log.debug("WAL checkpoint (%s) skipped: %s", mode, exc)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)
