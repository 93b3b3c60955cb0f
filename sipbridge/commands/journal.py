"""The command log: every command from every entry (HTTP API, SIP relay) and how it ended.

Entries wrap the call into `CallControl` with `CommandLog.run`, so success and failure are logged
the same way whoever asked. A failure's facts come from the error's `context` (filled by
`CallControl` once it knows the phone); a refusal before that has only the source and reason.

The entry is a group write (`tracker/group_commit.py`) that `run` awaits: the command is answered
only once its entry, and the call state `CallControl` queued just before it, have committed.

A 504 for a command that had left (`PhoneTimeout.sent`) is not the end of its story: when the
phone's late answer (or Timer F) ends the transaction, its outcome is written onto the same
entry (`late_outcome`, `late_status`, ...), after the call state that a late 2xx changes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable

from sipbridge.commands.control import CommandResult
from sipbridge.errors import PhoneRefused, PhoneRejected, PhoneTimeout, SipBridgeError, StoreError
from sipbridge.tracker.group_commit import GroupCommit
from sipbridge.tracker.models import CommandLogEntry

log = logging.getLogger(__name__)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


async def _state_recorded(result: CommandResult) -> None:
    """The call's new state committed with (or before) the log entry: a failed write is an
    error for the caller, who would otherwise be told of a state the tracker does not hold."""
    try:
        await result.recorded
    except StoreError as exc:
        error = StoreError(
            "the phone carried out the command, but the tracker could not record the call's "
            f"new state: {exc.detail}"
        )
        error.context.update(
            phone=result.phone, call_id=result.call_id, command_uri=result.command_uri
        )
        raise error from exc
    except Exception:
        return  # not the store's failure but a bug: logged where it happened (sipbridge/commands/control.py)


class CommandLog:
    def __init__(self, writes: GroupCommit) -> None:
        self._writes = writes

    async def run(self, source: str, command: Awaitable[CommandResult]) -> CommandResult:
        """Await `command` and log how it ended; the result or the error passes through."""
        with self._writes.under_way():
            return await self._run(source, command)

    async def _run(self, source: str, command: Awaitable[CommandResult]) -> CommandResult:
        started = time.perf_counter()
        try:
            result = await command
        except SipBridgeError as exc:
            # A failure has no result to time it: its latency is how long the caller waited.
            latency_ms = round((time.perf_counter() - started) * 1000, 3)
            context = exc.context
            entry_id = await self._write(
                CommandLogEntry(
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
            )
            if isinstance(exc, PhoneTimeout) and exc.late is not None and entry_id is not None:
                late = exc.late
                late.add_done_callback(lambda _: self._record_late(entry_id, late))
            raise
        await self._write(
            CommandLogEntry(
                source=source,
                outcome="ok",
                reason=result.sip_reason or "OK",
                phone_id=result.phone,
                call_id=result.call_id,
                command_uri=result.command_uri,
                transport=result.transport,
                status=result.sip_status if result.sip_status is not None else result.http_status,
                latency_ms=result.latency_ms,
            )
        )
        if result.recorded is not None:
            await _state_recorded(result)
        return result

    def _record_late(self, entry_id: int, late: asyncio.Future[CommandResult]) -> None:
        """Write how a command that got 504 after it left really ended onto its entry."""
        if late.cancelled():
            return
        failure = late.exception()
        if failure is None:
            result = late.result()
            outcome, reason = "ok", result.sip_reason or "OK"
            status = result.sip_status if result.sip_status is not None else result.http_status
            latency_ms: float | None = result.latency_ms
        else:
            outcome, reason = type(failure).__name__, str(failure)[:500]
            status = _status(failure) if isinstance(failure, SipBridgeError) else None
            latency_ms = None
        log.info("command log entry %d: late outcome %s (%s)", entry_id, outcome, reason)
        written = self._writes.defer(
            lambda: self._writes.store.record_late_outcome(
                entry_id, outcome=outcome, status=status, reason=reason, latency_ms=latency_ms
            )
        )
        written.add_done_callback(_log_failed_write)

    async def _write(self, entry: CommandLogEntry) -> int | None:
        try:
            return await self._writes.write(lambda: self._writes.store.log_command(entry))
        except SipBridgeError as exc:
            # The command itself is done; a failed log write must not turn it into an error.
            log.error("command log write failed: %s", exc.detail)
            return None


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
