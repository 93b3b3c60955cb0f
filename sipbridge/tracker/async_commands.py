"""Asynchronous commands' records (table `async_commands`): queued, then completed or failed
with the answer the synchronous request would have had. Every worker reads them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sipbridge.tracker.store import TrackerStore

INTERRUPTED = (
    b'{"type":"urn:sipbridge:problem:interrupted","title":"Interrupted","status":503,'
    b'"detail":"sipbridge stopped while the command ran; it may have reached the phone: '
    b'see GET /v1/commands"}'
)


@dataclass(frozen=True)
class AsyncCommand:
    id: int
    state: str  # queued, completed, failed
    created_at: float
    ended_at: float | None
    http_status: int | None
    body: bytes | None


class AsyncCommands:
    def __init__(self, store: TrackerStore) -> None:
        self._store = store

    def queue(self, *, worker: int, event: dict[str, Any]) -> int:
        """A new queued command and its `command.queued` event, in one transaction."""
        with self._store.transaction():
            rows = self._store.execute(
                "INSERT INTO async_commands (worker, created_at, state) VALUES (?, ?, 'queued') "
                "RETURNING id",
                (worker, self._store.now()),
            )
            command_id = int(rows[0][0])
            data = {"async_id": command_id, **event.get("data", {})}
            self._store.record_event(
                "command.queued",
                phone=event.get("phone"),
                call_id=event.get("call_id"),
                data=data,
                client_state=event.get("client_state"),
            )
        return command_id

    def end(self, command_id: int, *, http_status: int, body: bytes) -> None:
        state = "completed" if 200 <= http_status < 300 else "failed"
        self._store.execute(
            "UPDATE async_commands SET state = ?, http_status = ?, body = ?, ended_at = ? "
            "WHERE id = ?",
            (state, http_status, body, self._store.now(), command_id),
        )

    def get(self, command_id: int) -> AsyncCommand | None:
        rows = self._store.execute(
            "SELECT id, state, created_at, ended_at, http_status, body FROM async_commands "
            "WHERE id = ?",
            (command_id,),
        )
        return AsyncCommand(*rows[0]) if rows else None

    def interrupted(self, worker: int) -> int:
        """Commands this worker had queued when it last stopped (kill -9, a crash): failed,
        outcome unknown. Called at start, before it queues any."""
        rows = self._store.execute(
            "UPDATE async_commands SET state = 'failed', http_status = 503, body = ?, "
            "ended_at = ? WHERE worker = ? AND state = 'queued' RETURNING id",
            (INTERRUPTED, self._store.now(), worker),
        )
        return len(rows)

    def prune(self, *, max_age: float) -> int:
        rows = self._store.execute(
            "DELETE FROM async_commands WHERE created_at < ? AND state != 'queued' RETURNING id",
            (self._store.now() - max_age,),
        )
        return len(rows)
