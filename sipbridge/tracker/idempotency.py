"""Idempotency-Key records in the tracker database: who (`owner`, the caller's key digest) sent
which key with which request, and the answer once there is one. Claiming a key is one INSERT, so
of two workers racing on the same key exactly one runs the command."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sipbridge.tracker.store import TrackerStore


@dataclass(frozen=True)
class Recorded:
    request_hash: str
    created_at: float
    status: int | None  # None: the first request is still being answered
    headers: dict[str, str]
    body: bytes


class IdempotencyRecords:
    def __init__(self, store: TrackerStore) -> None:
        self._store = store

    def claim(self, owner: str, key: str, request_hash: str) -> bool:
        """True when this request is the first with `key`: it must run and `finish`."""
        rows = self._store.execute(
            "INSERT INTO idempotency (owner, key, request_hash, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING RETURNING key",
            (owner, key, request_hash, self._store.now()),
        )
        return bool(rows)

    def get(self, owner: str, key: str) -> Recorded | None:
        rows = self._store.execute(
            "SELECT request_hash, created_at, status, headers, body FROM idempotency "
            "WHERE owner = ? AND key = ?",
            (owner, key),
        )
        if not rows:
            return None
        row = rows[0]
        return Recorded(row[0], row[1], row[2], json.loads(row[3] or "{}"), row[4] or b"")

    def finish(
        self, owner: str, key: str, *, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        self._store.execute(
            "UPDATE idempotency SET status = ?, headers = ?, body = ? WHERE owner = ? AND key = ?",
            (status, json.dumps(headers), body, owner, key),
        )

    def release(self, owner: str, key: str) -> None:
        """The first request ended without an answer to keep (cancelled): the key is free."""
        self._store.execute(
            "DELETE FROM idempotency WHERE owner = ? AND key = ? AND status IS NULL", (owner, key)
        )

    def prune(self, *, max_age: float) -> int:
        rows = self._store.execute(
            "DELETE FROM idempotency WHERE created_at < ? RETURNING key",
            (self._store.now() - max_age,),
        )
        return len(rows)
