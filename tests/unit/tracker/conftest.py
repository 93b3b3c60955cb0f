"""A tracker store on a real SQLite file, shared by the tracker's unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sipbridge.tracker.store import TrackerStore


@pytest.fixture
def path(tmp_path):
    return tmp_path / "t.sqlite3"


@pytest.fixture
def store(path) -> Iterator[TrackerStore]:
    store = TrackerStore(path)
    yield store
    store.close()
