"""GroupCommit: the writes queued in one event-loop turn commit in one SQLite transaction.

Transactions are counted for real: every statement the store's connection runs is traced
(`sqlite3.Connection.set_trace_callback`), so "one transaction" means one BEGIN IMMEDIATE and
one COMMIT reached SQLite. What committed is read through a second connection to the same file,
which sees only committed data.
"""

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from typing import cast

import pytest

from sipbridge.errors import StoreError, UnknownPhone
from sipbridge.tracker import TrackerStore
from sipbridge.tracker.group_commit import GroupCommit
from sipbridge.tracker.models import CommandLogEntry

BEGIN = "BEGIN IMMEDIATE"


class Statements:
    """Every SQL statement the store's own connection runs, in order."""

    def __init__(self, store: TrackerStore) -> None:
        self.sql: list[str] = []
        store._db.set_trace_callback(self.sql.append)

    def count(self, statement: str) -> int:
        return self.sql.count(statement)

    def transactions(self) -> tuple[int, int, int]:
        """(BEGIN IMMEDIATE, COMMIT, ROLLBACK) as run so far."""
        return self.count(BEGIN), self.count("COMMIT"), self.count("ROLLBACK")


@pytest.fixture
def peer(path, store) -> Iterator[sqlite3.Connection]:
    """Another connection to the same file: it sees committed rows only."""
    db = sqlite3.connect(path, isolation_level=None)
    yield db
    db.close()


@pytest.fixture
def statements(store) -> Statements:
    return Statements(store)


@pytest.fixture
def writes(store) -> GroupCommit:
    return GroupCommit(store)


def committed(peer: sqlite3.Connection) -> list[str]:
    """The audit details committed so far, in insertion order."""
    return [row[0] for row in peer.execute("SELECT detail FROM audit ORDER BY id")]


def insert(store: TrackerStore, detail: str) -> Callable[[], str]:
    """A write that adds one audit row and returns its detail."""

    def write() -> str:
        store.audit("test", "write", detail)
        return detail

    return write


def failing_with_store_error(store: TrackerStore, detail: str) -> Callable[[], str]:
    """Writes a row, then runs a store call whose SQL fails (NOT NULL constraint)."""

    def write() -> str:
        store.audit("test", "write", f"partial {detail}")
        store.log_command(CommandLogEntry(source="test", outcome="ok", reason=cast(str, None)))
        return detail

    return write


def failing_with_unknown_phone(store: TrackerStore, detail: str) -> Callable[[], str]:
    """Writes a row, then a store call refuses (a domain error, not a database one)."""

    def write() -> str:
        store.audit("test", "write", f"partial {detail}")
        store.record_call("c1@h", phone_id="nobody", state="ringing")
        return detail

    return write


async def test_writes_queued_together_commit_in_one_transaction(store, writes, statements, peer):
    seen_on_resume: dict[int, list[str]] = {}

    async def caller(i: int) -> str:
        result: str = await writes.write(insert(store, f"w{i}"))
        # Back from write(): what it (and the whole group) wrote has committed.
        seen_on_resume[i] = committed(peer)
        return result

    results = await asyncio.gather(*(caller(i) for i in range(50)))

    assert results == [f"w{i}" for i in range(50)]
    assert statements.transactions() == (1, 1, 0)
    begin, commit = statements.sql.index(BEGIN), statements.sql.index("COMMIT")
    inserts = [i for i, sql in enumerate(statements.sql) if sql.startswith("INSERT INTO audit")]
    assert len(inserts) == 50
    assert all(begin < i < commit for i in inserts)
    assert committed(peer) == [f"w{i}" for i in range(50)]
    # Every caller resumed only after the commit: each saw all 50 rows from another connection.
    assert seen_on_resume == {i: [f"w{i}" for i in range(50)] for i in range(50)}
    assert not store._db.in_transaction


async def test_in_memory_store_groups_the_same_way():
    store = TrackerStore(":memory:")
    try:
        statements = Statements(store)
        writes = GroupCommit(store)
        results = await asyncio.gather(*(writes.write(insert(store, f"w{i}")) for i in range(20)))
        assert results == [f"w{i}" for i in range(20)]
        assert statements.transactions() == (1, 1, 0)
        assert [r[3] for r in reversed(store.audit_records())] == [f"w{i}" for i in range(20)]
    finally:
        store.close()


async def test_writes_awaited_one_after_the_other_commit_separately(
    store, writes, statements, peer
):
    assert await writes.write(insert(store, "first")) == "first"
    assert committed(peer) == ["first"]
    assert await writes.write(insert(store, "second")) == "second"
    assert committed(peer) == ["first", "second"]
    assert statements.transactions() == (2, 2, 0)


async def test_nothing_is_written_before_the_loop_turns(store, writes, statements, peer):
    future = writes.defer(insert(store, "later"))
    assert statements.transactions() == (0, 0, 0)
    assert committed(peer) == []
    assert await future == "later"
    assert committed(peer) == ["later"]


@pytest.mark.parametrize(
    ("failing", "error"),
    [(failing_with_store_error, StoreError), (failing_with_unknown_phone, UnknownPhone)],
)
async def test_a_failing_write_fails_only_its_caller(
    store, writes, statements, peer, failing, error
):
    calls = [insert(store, f"w{i}") for i in range(5)]
    calls[2] = failing(store, "w2")

    results = await asyncio.gather(*(writes.write(call) for call in calls), return_exceptions=True)

    assert [r for i, r in enumerate(results) if i != 2] == ["w0", "w1", "w3", "w4"]
    assert isinstance(results[2], error)
    # The good writes committed, in the order they were queued; nothing of the failing one did.
    assert committed(peer) == ["w0", "w1", "w3", "w4"]
    # One group transaction rolled back, then each write alone: 4 commits, 1 more rollback.
    assert statements.transactions() == (6, 4, 2)
    assert not store._db.in_transaction

    # The group commit keeps working: the next writes share one transaction again.
    more = await asyncio.gather(*(writes.write(insert(store, f"v{i}")) for i in range(3)))
    assert more == ["v0", "v1", "v2"]
    assert statements.transactions() == (7, 5, 2)
    assert committed(peer)[-3:] == ["v0", "v1", "v2"]


async def test_every_write_of_a_group_failing_fails_every_caller(store, writes, peer):
    calls = [failing_with_store_error(store, f"w{i}") for i in range(3)]
    results = await asyncio.gather(*(writes.write(call) for call in calls), return_exceptions=True)
    assert all(isinstance(result, StoreError) for result in results)
    assert committed(peer) == []
    assert not store._db.in_transaction


async def test_a_cancelled_caller_still_has_its_write_made(store, writes, statements, peer):
    cancelled = asyncio.create_task(writes.write(insert(store, "cancelled")))
    waiting = asyncio.create_task(writes.write(insert(store, "waiting")))
    await asyncio.sleep(0)  # both tasks queued their write; the flush has not run yet
    assert writes._pending and committed(peer) == []

    cancelled.cancel()
    assert await waiting == "waiting"

    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert cancelled.cancelled()
    assert committed(peer) == ["cancelled", "waiting"]
    assert statements.transactions() == (1, 1, 0)


async def test_a_cancelled_caller_still_has_its_write_made_when_the_group_fails(
    store, writes, peer
):
    cancelled = asyncio.create_task(writes.write(insert(store, "cancelled")))
    failing = asyncio.create_task(writes.write(failing_with_store_error(store, "bad")))
    waiting = asyncio.create_task(writes.write(insert(store, "waiting")))
    await asyncio.sleep(0)
    assert committed(peer) == []

    cancelled.cancel()
    assert await waiting == "waiting"
    with pytest.raises(StoreError):
        await failing
    assert cancelled.cancelled()
    assert committed(peer) == ["cancelled", "waiting"]


async def test_deferred_write_commits_with_the_awaited_write_of_the_same_turn(
    store, writes, statements, peer
):
    deferred = writes.defer(insert(store, "deferred"))
    assert await writes.write(insert(store, "awaited")) == "awaited"

    # Once the awaited write returned, the deferred one is committed and settled too.
    assert committed(peer) == ["deferred", "awaited"]
    assert deferred.done() and deferred.result() == "deferred"
    assert statements.transactions() == (1, 1, 0)


async def test_a_failing_deferred_write_does_not_fail_the_awaited_one(
    store, writes, statements, peer
):
    deferred = writes.defer(failing_with_store_error(store, "deferred"))
    assert await writes.write(insert(store, "awaited")) == "awaited"

    assert deferred.done()
    assert isinstance(deferred.exception(), StoreError)
    assert committed(peer) == ["awaited"]
    assert statements.transactions() == (3, 1, 2)


async def test_writes_commit_in_the_order_they_were_queued(store, writes, peer):
    futures = [writes.defer(insert(store, f"d{i}")) for i in range(10)]
    tasks = [asyncio.create_task(writes.write(insert(store, f"t{i}"))) for i in range(10)]
    futures += [writes.defer(insert(store, f"d{i}")) for i in range(10, 20)]
    await asyncio.gather(*futures, *tasks)

    # The deferred writes were queued now, the tasks' writes when the tasks first ran.
    expected = [f"d{i}" for i in range(20)] + [f"t{i}" for i in range(10)]
    assert committed(peer) == expected

    # A write queued in a later turn commits after everything queued before it.
    late = asyncio.create_task(writes.write(insert(store, "late")))
    early = writes.defer(insert(store, "early"))
    await asyncio.gather(late, early)
    assert committed(peer)[-2:] == ["early", "late"]


def failing_at_commit(store: TrackerStore, detail: str) -> Callable[[], str]:
    """Writes a row and a call of a phone that does not exist, the foreign key check deferred.

    Every statement succeeds; the COMMIT itself fails (FOREIGN KEY constraint failed), which is
    how a COMMIT that cannot complete (disk full, I/O error) looks to the store.
    """

    def write() -> str:
        store.audit("test", "write", f"partial {detail}")
        store._db.execute("PRAGMA defer_foreign_keys=ON")
        store._db.execute(
            "INSERT INTO calls (call_id, phone_id, state, first_seen, updated_at) "
            "VALUES ('c1@h', 'nobody', 'ringing', 0, 0)"
        )
        return detail

    return write


async def test_a_failing_commit_leaves_no_transaction_open(store, writes, statements, peer):
    calls = [insert(store, f"w{i}") for i in range(4)]
    calls[2] = failing_at_commit(store, "w2")

    results = await asyncio.gather(*(writes.write(call) for call in calls), return_exceptions=True)

    assert [r for i, r in enumerate(results) if i != 2] == ["w0", "w1", "w3"]
    assert isinstance(results[2], StoreError)
    assert "FOREIGN KEY" in str(results[2])
    assert not store._db.in_transaction
    # The group's COMMIT failed and was rolled back; then each write alone, the bad one failing
    # at its COMMIT again: 5 BEGINs, 5 COMMITs reached SQLite (2 of them failed), 2 ROLLBACKs.
    assert statements.transactions() == (5, 5, 2)
    assert statements.sql.index("ROLLBACK") == statements.sql.index("COMMIT") + 1
    assert committed(peer) == ["w0", "w1", "w3"]
    assert peer.execute("SELECT count(*) FROM calls").fetchone()[0] == 0

    # Nothing is left open: a single write outside the group commits at once on its own ...
    store.audit("test", "write", "alone")
    assert committed(peer)[-1] == "alone"
    # ... and the next group commits in one transaction again.
    more = await asyncio.gather(*(writes.write(insert(store, f"v{i}")) for i in range(3)))
    assert more == ["v0", "v1", "v2"]
    assert statements.transactions() == (6, 6, 2)
    assert committed(peer)[-3:] == ["v0", "v1", "v2"]
    assert not store._db.in_transaction


class Stop(BaseException):
    """Not an Exception: what a write cannot be expected to handle (like SystemExit)."""


def interrupted(store: TrackerStore, detail: str, exc: type[BaseException]) -> Callable[[], str]:
    """Writes a row, then raises `exc`."""

    def write() -> str:
        store.audit("test", "write", f"partial {detail}")
        raise exc

    return write


async def test_an_interrupted_write_fails_every_caller_of_its_group(
    store, writes, statements, peer
):
    # The flush runs as an event-loop callback: a BaseException out of it goes to the loop's
    # exception handler (asyncio re-raises only SystemExit and KeyboardInterrupt).
    loop = asyncio.get_running_loop()
    escaped: list[BaseException] = []
    loop.set_exception_handler(lambda _loop, context: escaped.append(context["exception"]))
    try:
        calls = [insert(store, f"w{i}") for i in range(4)]
        calls[1] = interrupted(store, "w1", Stop)
        results = await asyncio.wait_for(
            asyncio.gather(*(writes.write(call) for call in calls), return_exceptions=True), 2
        )
    finally:
        loop.set_exception_handler(None)

    # Nobody waits forever: every caller of the group, not only the interrupted one, is told.
    assert all(isinstance(r, StoreError) for r in results), results
    assert all("interrupted" in str(r) for r in results)
    assert [type(exc) for exc in escaped] == [Stop]
    # The group rolled back and was not redone write by write.
    assert statements.transactions() == (1, 0, 1)
    assert committed(peer) == []
    assert not store._db.in_transaction

    more = await asyncio.gather(*(writes.write(insert(store, f"v{i}")) for i in range(2)))
    assert more == ["v0", "v1"]
    assert committed(peer) == ["v0", "v1"]
    assert statements.transactions() == (2, 1, 1)


async def test_a_keyboard_interrupt_in_a_write_fails_every_caller_of_its_group(
    store, writes, statements, peer
):
    futures = [
        writes.defer(insert(store, "w0")),
        writes.defer(interrupted(store, "w1", KeyboardInterrupt)),
        writes.defer(insert(store, "w2")),
    ]
    # Out of a loop callback asyncio re-raises KeyboardInterrupt and the test's own loop would
    # stop: run the flush the loop has scheduled by hand, here, where the interrupt can be caught.
    with pytest.raises(KeyboardInterrupt):
        writes._flush()
    assert all(future.done() for future in futures)
    results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 2)

    assert all(isinstance(r, StoreError) and "interrupted" in str(r) for r in results), results
    assert committed(peer) == []
    assert not store._db.in_transaction
    assert writes._pending == []


async def test_an_interrupt_while_writes_are_redone_one_by_one_fails_every_caller(
    store, writes, peer
):
    runs = 0

    def interrupted_when_redone() -> str:
        # Succeeds within the group; the interrupt arrives when it runs again on its own.
        nonlocal runs
        runs += 1
        if runs > 1:
            raise Stop
        return "first"

    loop = asyncio.get_running_loop()
    escaped: list[BaseException] = []
    loop.set_exception_handler(lambda _loop, context: escaped.append(context["exception"]))
    try:
        # The group runs the first write, then fails at the second and is redone one by one.
        calls = [
            interrupted_when_redone,
            failing_with_store_error(store, "second"),
            insert(store, "third"),
        ]
        results = await asyncio.wait_for(
            asyncio.gather(*(writes.write(call) for call in calls), return_exceptions=True), 2
        )
    finally:
        loop.set_exception_handler(None)

    assert runs == 2
    assert [type(exc) for exc in escaped] == [Stop]
    assert all(isinstance(r, StoreError) for r in results), results
    assert not store._db.in_transaction


async def test_the_only_command_under_way_commits_at_once_with_what_was_deferred(
    store, writes, statements, peer
):
    turned: list[str] = []
    asyncio.get_running_loop().call_soon(turned.append, "turn")
    with writes.under_way():
        deferred = writes.defer(insert(store, "state"))
        assert await writes.write(insert(store, "log")) == "log"
        # Committed, both in one transaction, and the loop never turned in between.
        assert turned == []
        assert committed(peer) == ["state", "log"]
        assert deferred.done() and deferred.result() == "state"
        assert statements.transactions() == (1, 1, 0)
    # The flush the deferred write had scheduled finds nothing left to commit.
    await asyncio.sleep(0)
    assert turned == ["turn"]
    assert statements.transactions() == (1, 1, 0)


async def test_a_lone_writer_still_gets_its_own_error(store, writes, peer):
    with writes.under_way(), pytest.raises(StoreError):
        await writes.write(failing_with_store_error(store, "bad"))
    assert committed(peer) == []
    assert not store._db.in_transaction


async def test_commands_under_way_together_share_one_transaction(store, writes, statements, peer):
    arrived = 0
    all_under_way = asyncio.Event()

    async def command(i: int) -> str:
        nonlocal arrived
        with writes.under_way():
            arrived += 1
            if arrived == 20:
                all_under_way.set()
            await all_under_way.wait()  # the phones' answers come in the same poll
            result: str = await writes.write(insert(store, f"w{i}"))
            return result

    results = await asyncio.gather(*(command(i) for i in range(20)))
    assert results == [f"w{i}" for i in range(20)]
    assert statements.transactions() == (1, 1, 0)
    assert sorted(committed(peer)) == sorted(f"w{i}" for i in range(20))


async def test_a_lone_command_after_another_one_ended_still_commits_at_once(store, writes):
    # The count of commands under way goes back down when one ends: the next lone writer
    # commits without giving up the loop (issue #23: a miscount only showed as extra turns).
    with writes.under_way():
        await writes.write(insert(store, "first"))
    turned: list[int] = []
    asyncio.get_running_loop().call_soon(turned.append, 1)
    with writes.under_way():
        await writes.write(insert(store, "second"))
    assert turned == []
