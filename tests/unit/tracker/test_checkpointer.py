"""The WAL checkpointer thread of TrackerStore (`_Checkpointer` in tracker/store.py).

Progress is read without checkpointing: a probe that ran `PRAGMA wal_checkpoint` itself would
copy the frames and prove nothing. Instead the tests look at SQLite's own files:

- the WAL-index (`-shm`) header: `mxFrame` (the last valid frame in the WAL, offset 16) and
  `nBackfill` (how many of them a checkpoint copied into the database, offset 96), in native byte
  order (SQLite "WAL-mode File Format", "The WAL-Index Format");
- the main database file's bytes: a row written to the WAL reaches it only by a checkpoint.

Every wait is a poll with a deadline of a few seconds; CHECKPOINT_EVERY is 0.5 s.
"""

import sqlite3
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sipbridge.tracker import TrackerStore
from sipbridge.tracker import store as store_module

DEADLINE = 5.0
THREAD_NAME = "sqlite-checkpoint"


def wal_index(path: Path) -> tuple[int, int]:
    """(mxFrame, nBackfill) from the WAL-index header in `<db>-shm`."""
    header = Path(f"{path}-shm").read_bytes()[:100]
    (max_frame,) = struct.unpack_from("=I", header, 16)
    (backfilled,) = struct.unpack_from("=I", header, 96)
    return max_frame, backfilled


def wait_for(condition: Callable[[], bool], timeout: float = DEADLINE) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def fully_checkpointed(path: Path) -> bool:
    max_frame, backfilled = wal_index(path)
    return backfilled == max_frame


def checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def small_commits(store: TrackerStore, marker: str, count: int = 200) -> None:
    """`count` autocommit writes, each its own transaction (a few WAL frames each)."""
    for i in range(count):
        store.audit("test", "write", f"{marker}-{i:04d}")


class _NoCheckpointer:
    def __init__(self, path: str) -> None:
        pass

    def stop(self) -> None:
        pass


def test_a_file_store_starts_the_thread_and_close_stops_it(path):
    before = set(checkpoint_threads())
    store = TrackerStore(path)
    started = set(checkpoint_threads()) - before
    assert len(started) == 1
    (thread,) = started
    assert thread.daemon and thread.is_alive()
    store.close()
    assert not thread.is_alive()


def test_a_memory_store_starts_no_thread():
    before = set(checkpoint_threads())
    store = TrackerStore(":memory:")
    try:
        assert store._checkpointer is None
        assert set(checkpoint_threads()) == before
    finally:
        store.close()


def test_the_request_connection_checkpoints_only_as_a_backstop(store):
    (pages,) = store._db.execute("PRAGMA wal_autocheckpoint").fetchone()
    assert pages == store_module._BACKSTOP_CHECKPOINT_PAGES
    assert pages > 1000  # SQLite's default, which would checkpoint on the event loop


def test_without_the_thread_commits_past_1000_pages_are_not_checkpointed(path, monkeypatch):
    """The backstop for real: the request connection does not checkpoint at SQLite's default."""
    monkeypatch.setattr(store_module, "_Checkpointer", _NoCheckpointer)
    store = TrackerStore(path)
    try:
        small_commits(store, "row", count=700)
        max_frame, backfilled = wal_index(path)
        assert max_frame > 1000  # the default wal_autocheckpoint would have run by now
        assert backfilled == 0
        assert b"row-0000" not in path.read_bytes()
    finally:
        store.close()


def test_many_small_commits_are_copied_into_the_database_file(store, path):
    small_commits(store, "first")
    max_frame, _ = wal_index(path)
    assert max_frame > 0

    assert wait_for(lambda: fully_checkpointed(path)), wal_index(path)
    data = path.read_bytes()
    assert b"first-0000" in data and b"first-0199" in data

    # Not a one-off: the next round copies what was committed since.
    small_commits(store, "second")
    assert wait_for(lambda: fully_checkpointed(path) and b"second-0199" in path.read_bytes()), (
        wal_index(path)
    )


def test_the_checkpoints_are_passive_and_never_block_a_writer(store, path):
    """A reader holding an old snapshot stops a checkpoint short, never the writes behind it.

    A blocking mode (FULL, RESTART, TRUNCATE) would wait for that reader while holding the
    write lock: the writer would stall for SQLite's busy timeout (5 s) or fail.
    """
    small_commits(store, "before")
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM audit").fetchone() == (200,)
        deadline = time.monotonic() + 2 * store_module.CHECKPOINT_EVERY + 0.5
        slowest = 0.0
        while time.monotonic() < deadline:
            started = time.monotonic()
            store.audit("test", "write", "while-reading")
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < 1.0
        # The frames written after the reader's snapshot wait for it to finish.
        assert not fully_checkpointed(path)
        reader.execute("COMMIT")
    finally:
        reader.close()
    assert wait_for(lambda: fully_checkpointed(path)), wal_index(path)


def test_close_truncates_the_wal(path):
    store = TrackerStore(path)
    # Another connection stays open, so the store's connection is not the last one to close
    # (the last one deletes the WAL whatever the thread did): the WAL left is the thread's doing.
    other = sqlite3.connect(path, isolation_level=None)
    try:
        assert other.execute("SELECT count(*) FROM audit").fetchone() == (0,)
        small_commits(store, "row")
        wal = Path(f"{path}-wal")
        assert wal.stat().st_size > 0
        store.close()
        assert wal.exists()
        assert wal.stat().st_size == 0
        # Nothing was lost by truncating: every row is in the database file itself.
        assert other.execute("SELECT count(*) FROM audit").fetchone() == (200,)
    finally:
        other.close()


def test_close_leaves_no_wal_content_behind(path):
    store = TrackerStore(path)
    small_commits(store, "row")
    store.close()
    wal = Path(f"{path}-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    reopened = sqlite3.connect(path)
    try:
        assert reopened.execute("SELECT count(*) FROM audit").fetchone() == (200,)
    finally:
        reopened.close()
