"""Per-phone single flight: one command on the wire per phone, the rest wait in FIFO order.

Poly phones do not process requests in parallel (manual 002, prerequisites: a second request
gets 403 or waits), so commands for one phone are serialized here, across all callers. Commands
for different phones run concurrently. A phone's queue is bounded; past the bound the caller is
told to retry (429), which keeps one stuck phone from holding unbounded memory.

With several worker processes (`serve --workers N`) a command also takes the phone's lock in
`phone_locks.SharedPhoneLocks` once its lane's turn comes, so the rule holds across processes;
the order among commands for one phone that arrived at different workers is not defined.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

from sipbridge.errors import PhoneTimeout, QueueFull
from sipbridge.phone_locks import SharedPhoneLocks
from sipbridge.sip.action_uri import OutgoingRequest, SipAnswer
from sipbridge.sip.sender import NotifySender


@dataclass
class _Lane:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holders: int = 0  # the command on the wire plus those waiting


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """The phone's answer and how long the whole command took, queueing included."""

    answer: SipAnswer
    latency_ms: float


class Dispatcher:
    def __init__(
        self,
        sender: NotifySender,
        *,
        queue_limit: int,
        deadline: float,
        shared_locks: SharedPhoneLocks | None = None,
    ) -> None:
        self._sender = sender
        self._shared_locks = shared_locks
        self._queue_limit = queue_limit
        self._deadline = deadline
        self._lanes: dict[str, _Lane] = {}

    def queued(self, phone_id: str) -> int:
        lane = self._lanes.get(phone_id)
        return 0 if lane is None else lane.holders

    async def deliver(self, phone_id: str, request: OutgoingRequest) -> Delivery:
        """Send `request` to the phone when its turn comes; raise if the deadline passes."""
        lane = self._lanes.setdefault(phone_id, _Lane())
        if lane.holders >= self._queue_limit:
            raise QueueFull(
                f"phone {phone_id!r} already has {lane.holders} commands queued",
                retry_after=max(1, math.ceil(self._deadline)),
            )
        lane.holders += 1
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._deadline):
                async with lane.lock:
                    answer = await self._send_alone(phone_id, request)
        except TimeoutError as exc:
            raise PhoneTimeout(
                f"no answer from phone {phone_id!r} within {self._deadline:g} s"
            ) from exc
        finally:
            lane.holders -= 1
            if lane.holders == 0:
                # Idle phones keep no lane: memory stays flat with many phones.
                del self._lanes[phone_id]
        return Delivery(answer=answer, latency_ms=(time.perf_counter() - started) * 1000)

    async def _send_alone(self, phone_id: str, request: OutgoingRequest) -> SipAnswer:
        """Send while holding the phone's lock in every worker process, if there are several."""
        locks = self._shared_locks
        if locks is None:
            return await self._sender.send(request)
        await locks.acquire(phone_id)
        try:
            return await self._sender.send(request)
        finally:
            locks.release(phone_id)
