"""Per-phone single flight: one command on the wire per phone, the rest wait in FIFO order.

Poly phones do not process requests in parallel (manual 002, prerequisites: a second request
gets 403 or waits), so commands for one phone are serialized here, across all callers. Commands
for different phones run concurrently. A phone's queue is bounded; past the bound the caller is
told to retry (429), which keeps one stuck phone from holding unbounded memory.

Single flight is exact: a phone's lane is held until the transaction on it has really ended
(its final answer, or Timer F, RFC 3261 §17.1.2.2), never only until a caller stopped waiting.
The caller's deadline bounds its whole wait; a command that has left is owned by a flight task
that holds the lane and the cross-process lock until the sender returns, shielded from the
caller's timeout and cancellation. So a 504 says whether the command left (`sent`), and a
command that left hands its late answer on (`PhoneTimeout.late`) to be recorded.

A lane knows nothing of transports: it runs whatever send it is given (a NOTIFY through the SIP
user agent, a REST call through the phone's HTTP client), so both share one queue per phone.

With several worker processes (`serve --workers N`) a command also takes the phone's lock in
`shared_locks.SharedPhoneLocks` once its lane's turn comes, so the rule holds across processes;
the order among commands for one phone that arrived at different workers is not defined.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sipbridge.commands.shared_locks import SharedPhoneLocks
from sipbridge.errors import PhoneTimeout, QueueFull

Answer = TypeVar("Answer")

log = logging.getLogger(__name__)


@dataclass
class _Lane:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holders: int = 0  # the command on the wire plus those waiting


@dataclass(frozen=True, kw_only=True)
class Answered(Generic[Answer]):
    """The phone's answer and how long the whole command took, queueing included."""

    answer: Answer
    latency_ms: float


class Lanes:
    def __init__(
        self,
        *,
        queue_limit: int,
        deadline: float,
        shared_locks: SharedPhoneLocks | None = None,
    ) -> None:
        self._shared_locks = shared_locks
        self._queue_limit = queue_limit
        self._deadline = deadline
        self._lanes: dict[str, _Lane] = {}
        # Flights whose caller stopped waiting: referenced until they end (asyncio keeps only
        # weak references to tasks).
        self._orphans: set[asyncio.Task[object]] = set()

    def queued(self, phone_id: str) -> int:
        lane = self._lanes.get(phone_id)
        return 0 if lane is None else lane.holders

    def load(self) -> tuple[int, int]:
        """(commands on the wire, commands waiting behind them), over every phone: one on the
        wire per busy lane, the rest of its holders wait."""
        busy = [lane.holders for lane in self._lanes.values() if lane.holders]
        return len(busy), sum(busy) - len(busy)

    async def deliver(
        self,
        phone_id: str,
        send: Callable[[], Coroutine[Any, Any, Answer]],
        *,
        deadline: float | None = None,
    ) -> Answered[Answer]:
        """Run `send` when the phone's turn comes; PhoneTimeout if the deadline passes.

        `deadline` shortens the lanes' own for this command (the PBX relay's, under the PBX's
        Timer F). The PhoneTimeout says whether the request left (`sent`); if it did, its
        transaction goes on holding the lane, and `late` resolves to its answer when it ends.
        """
        wait = self._deadline if deadline is None else min(deadline, self._deadline)
        lane = self._lanes.setdefault(phone_id, _Lane())
        if lane.holders >= self._queue_limit:
            raise QueueFull(
                f"phone {phone_id!r} already has {lane.holders} commands queued",
                # The queue drains at the lanes' pace, whatever this caller's own deadline.
                retry_after=max(1, math.ceil(self._deadline)),
            )
        lane.holders += 1
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        deadline_at = loop.time() + wait
        try:
            if lane.holders == 1 and self._shared_free(phone_id):
                # Nobody else in this lane: the lock is free and acquire() returns at once,
                # so no timer is needed (the common case, one command a phone at a time).
                await lane.lock.acquire()
            else:
                async with asyncio.timeout_at(deadline_at):
                    await self._take(phone_id, lane)
        except TimeoutError as exc:
            self._leave(phone_id, lane)
            raise PhoneTimeout(
                f"phone {phone_id!r} was busy with earlier commands for {wait:g} s; "
                "this one was not sent",
                sent=False,
            ) from exc
        except BaseException:
            self._leave(phone_id, lane)
            raise
        # From here the flight owns the lane: it lets go when the sender returns, whoever waits.
        try:
            flight: asyncio.Task[Answer] = loop.create_task(send())
        except BaseException:
            self._land(phone_id, lane)
            raise
        flight.add_done_callback(lambda _: self._land(phone_id, lane))
        # Wait for the flight or the deadline, whichever comes first, without cancelling it (a
        # future and a timer: cheaper than asyncio.shield under asyncio.timeout).
        turn: asyncio.Future[None] = loop.create_future()

        def wake(_: object) -> None:
            if not turn.done():
                turn.set_result(None)

        flight.add_done_callback(wake)
        timer = loop.call_at(deadline_at, wake, None)
        try:
            await turn
        except BaseException:
            self._orphan(flight)  # the caller was cancelled: the transaction still runs
            raise
        finally:
            timer.cancel()
            flight.remove_done_callback(wake)
        if not flight.done():
            self._orphan(flight)
            raise PhoneTimeout(
                f"no final answer from phone {phone_id!r} within {wait:g} s; the "
                "command was sent, its outcome is not known yet",
                sent=True,
                late=flight,
            )
        answer = flight.result()  # or the sender's error
        return Answered(answer=answer, latency_ms=(time.perf_counter() - started) * 1000)

    def _shared_free(self, phone_id: str) -> bool:
        """Take the cross-process lock if no other process holds it (or there is none)."""
        return self._shared_locks is None or self._shared_locks.try_acquire(phone_id)

    async def _take(self, phone_id: str, lane: _Lane) -> None:
        """The lane, then the phone's lock in every worker process (if there are several)."""
        await lane.lock.acquire()
        if self._shared_locks is None:
            return
        try:
            await self._shared_locks.acquire(phone_id)
        except BaseException:
            lane.lock.release()
            raise

    def _land(self, phone_id: str, lane: _Lane) -> None:
        """The transaction has ended: free the phone for its next command."""
        if self._shared_locks is not None:
            self._shared_locks.release(phone_id)
        lane.lock.release()
        self._leave(phone_id, lane)

    def _leave(self, phone_id: str, lane: _Lane) -> None:
        lane.holders -= 1
        if lane.holders == 0 and self._lanes.get(phone_id) is lane:
            # Idle phones keep no lane: memory stays flat with many phones.
            del self._lanes[phone_id]

    def _orphan(self, flight: asyncio.Task[Answer]) -> None:
        if flight.done():
            return
        self._orphans.add(flight)
        flight.add_done_callback(self._orphans.discard)
        flight.add_done_callback(_log_orphan_failure)


def _log_orphan_failure(flight: asyncio.Task[Answer]) -> None:
    # Nobody may await a flight whose caller left: retrieve its error so it is not lost.
    if not flight.cancelled() and flight.exception() is not None:
        log.info("a command whose caller had left ended with: %s", flight.exception())
