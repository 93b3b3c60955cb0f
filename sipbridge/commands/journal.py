"""Recording a command: how it ended (the command log) and what it changed (the call's state),
as one group write (`tracker/group_commit.py`) that the command awaits before it is answered.

Every entry (HTTP API, PBX relay) runs its command through `Journal.run`, so success and failure
are recorded the same way whoever asked. A failure's facts come from the error's `context`
(filled by `CallControl` once it knows the phone); a refusal before that has only the source and
reason. A command the phone carried out commits its state change and its log entry together:
the client is told only of what the tracker holds.

A 504 for a command that had left (`PhoneTimeout.sent`) is not the end of its story: when the
phone's late answer (or Timer F) ends the transaction, its outcome is written onto the same entry
(`late_outcome`, `late_status`, ...) together with the state change a late 2xx makes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from sipbridge.commands.observe import CommandObserver, NoObserver
from sipbridge.commands.outcome import CommandResult
from sipbridge.errors import PhoneRefused, PhoneRejected, PhoneTimeout, SipBridgeError, StoreError
from sipbridge.tracker.group_commit import GroupCommit
from sipbridge.tracker.models import CommandLogEntry

log = logging.getLogger(__name__)

StateChange = Callable[[], None]


@dataclass(frozen=True, kw_only=True)
class Completed:
    """A command the phone carried out, and the tracker write that follows from it (if any)."""

    result: CommandResult
    change: StateChange | None = None


class Journal:
    def __init__(self, writes: GroupCommit, *, observer: CommandObserver | None = None) -> None:
        self._writes = writes
        self._observer: CommandObserver = observer or NoObserver()

    async def run(
        self, source: str, command: Awaitable[Completed], *, client_state: str | None = None
    ) -> CommandResult:
        """Await `command`, record how it ended; the result or the error passes through.
        `client_state` goes on its events (the command's and its call's)."""
        with self._writes.under_way():
            return await self._run(source, command, client_state)

    async def _run(
        self, source: str, command: Awaitable[Completed], client_state: str | None
    ) -> CommandResult:
        started = time.perf_counter()
        try:
            done = await command
        except SipBridgeError as exc:
            # A failure has no result to time it: its latency is how long the caller waited.
            latency_ms = round((time.perf_counter() - started) * 1000, 3)
            entry = replace(_failure_entry(source, exc, latency_ms), client_state=client_state)
            entry_id = await self._write_entry(entry)
            if isinstance(exc, PhoneTimeout) and exc.late is not None and entry_id is not None:
                late = exc.late
                late.add_done_callback(lambda _: self._record_late(entry_id, entry, late))
            raise
        await self._commit(source, done, client_state)
        return done.result

    async def _commit(self, source: str, done: Completed, client_state: str | None) -> None:
        """The state change and the log entry in one write; a failed state write fails the
        command (the phone did it, the tracker does not know), a failed log write does not."""
        entry = replace(_success_entry(source, done.result), client_state=client_state)
        change = done.change
        if change is None:
            await self._write_entry(entry)
            return

        def record() -> int:
            change()
            return self._writes.store.log_command(entry)

        try:
            await self._writes.write(record)
            self._observer.command_ended(entry, written=True)
            return
        except SipBridgeError:
            pass  # which of the two failed? the state change alone decides
        try:
            await self._writes.write(change)
        except StoreError as exc:
            await self._write_entry(entry)
            error = StoreError(
                "the phone carried out the command, but the tracker could not record the "
                f"call's new state: {exc.detail}"
            )
            error.context.update(
                phone=done.result.phone,
                call_id=done.result.call_id,
                command_uri=done.result.command_uri,
            )
            raise error from exc
        await self._write_entry(entry)

    def _record_late(
        self, entry_id: int, entry: CommandLogEntry, late: asyncio.Future[Completed]
    ) -> None:
        """Write how a command that got 504 after it left really ended onto its entry, with
        the state change a late 2xx makes, in one write."""
        if late.cancelled():
            return
        failure = late.exception()
        change: StateChange | None = None
        if failure is None:
            done = late.result()
            result, change = done.result, done.change
            outcome, reason = "ok", result.sip_reason or "OK"
            status = result.status
            latency_ms: float | None = result.latency_ms
        else:
            outcome, reason = type(failure).__name__, str(failure)[:500]
            status = _status(failure) if isinstance(failure, SipBridgeError) else None
            latency_ms = None
        log.info("command log entry %d: late outcome %s (%s)", entry_id, outcome, reason)
        self._observer.late_outcome(entry, outcome)

        def record() -> None:
            if change is not None:
                change()
            self._writes.store.record_late_outcome(
                entry_id, outcome=outcome, status=status, reason=reason, latency_ms=latency_ms
            )

        self._writes.defer(record).add_done_callback(_log_failed_write)

    async def _write_entry(self, entry: CommandLogEntry) -> int | None:
        try:
            entry_id = await self._writes.write(lambda: self._writes.store.log_command(entry))
        except SipBridgeError as exc:
            # The command itself is done; a failed log write must not turn it into an error.
            log.error("command log write failed: %s", exc.detail)
            self._observer.command_ended(entry, written=False)
            return None
        self._observer.command_ended(entry, written=True)
        return entry_id


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _failure_entry(source: str, exc: SipBridgeError, latency_ms: float) -> CommandLogEntry:
    context = exc.context
    return CommandLogEntry(
        source=source,
        outcome=type(exc).__name__,
        reason=exc.detail[:500],
        phone_id=_text(context.get("phone")),
        call_id=_text(context.get("call_id")),
        command_uri=_text(context.get("command_uri")),
        transport=_text(context.get("transport")),
        status=_status(exc),
        sent=exc.sent if isinstance(exc, PhoneTimeout) else None,
        latency_ms=latency_ms,
    )


def _success_entry(source: str, result: CommandResult) -> CommandLogEntry:
    return CommandLogEntry(
        source=source,
        outcome="ok",
        reason=result.sip_reason or "OK",
        phone_id=result.phone,
        call_id=result.call_id,
        command_uri=result.command_uri,
        transport=result.transport,
        status=result.status,
        latency_ms=result.latency_ms,
    )


def _status(exc: SipBridgeError) -> int | None:
    """The phone's own status, where it answered with one."""
    if isinstance(exc, PhoneRejected):
        return exc.sip_status
    if isinstance(exc, PhoneRefused):
        return exc.http_status
    return None


def _log_failed_write(written: asyncio.Future[None]) -> None:
    if not written.cancelled() and written.exception() is not None:
        log.error("command log write failed: %s", written.exception())
