"""Dialog-event subscriptions (RFC 4235) to the phones sipbridge tracks.

The SUBSCRIBE goes out through the pjsua2 UA (`NotifySender`), with a Contact pointing at
sipbridge's own listener, so the phone's NOTIFYs arrive there. pjsua keeps no dialog for an
out-of-dialog request (PJSUA2_NOTES.md): a refresh is a new subscription before the old one runs
out, and each subscription is told apart by a token in its Contact's user part — the NOTIFY's
Request-URI carries it back (RFC 3261 §12.1.1), even when the NOTIFY beats the 200.

Lifecycle of one phone's subscription, as a table (`_NEXT`):

    due --send--> pending --2xx--> active --refresh time--> due
                          --error/no answer--> due (after `retry_after`)
    active --NOTIFY Subscription-State: terminated--> due
    any --phone gone--> (forgotten)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from sipbridge.sip import action_uri
from sipbridge.sip.action_uri import OutgoingRequest, SipAnswer
from sipbridge.sip.message import SipParseError, SipResponse, parse_message, uri_host
from sipbridge.sip.sender import NotifySender
from sipbridge.tracker.models import Phone

log = logging.getLogger(__name__)

TOKEN_PREFIX = "sub-"
SubState = Literal["due", "pending", "active"]

_NEXT: Final[dict[tuple[SubState, str], SubState]] = {
    ("due", "send"): "pending",
    ("pending", "accepted"): "active",
    ("pending", "failed"): "due",
    ("active", "refresh"): "due",
    ("active", "terminated"): "due",
    ("pending", "terminated"): "due",
    ("due", "terminated"): "due",
}


class SubscriptionStateError(Exception):
    """An event that has no row in the lifecycle table for the subscription's state."""


@dataclass
class Subscription:
    phone_id: str
    contact: str
    transport: str
    state: SubState = "due"
    due_at: float = 0.0
    expires_at: float = 0.0
    last_version: int | None = None

    def move(self, event: str) -> None:
        try:
            self.state = _NEXT[(self.state, event)]
        except KeyError as exc:
            raise SubscriptionStateError(f"{event!r} while {self.state}") from exc


class DialogSubscriptions:
    """Keeps one live dialog subscription per tracked phone."""

    def __init__(
        self,
        sender: NotifySender,
        *,
        listener_host: str,
        listener_port: Callable[[], int],
        expires: int = 3600,
        retry_after: float = 60.0,
        outbound_proxy: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sender = sender
        self._outbound_proxy = outbound_proxy
        self._listener_host = listener_host
        self._listener_port = listener_port
        self._expires = expires
        self._retry_after = retry_after
        self._clock = clock
        self._by_phone: dict[str, Subscription] = {}
        # token -> (subscription, token valid until); old tokens stay valid until they expire.
        self._tokens: dict[str, tuple[Subscription, float]] = {}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- what the feeds tell us -------------------------------------------------------------

    def phone_registered(self, phone: Phone) -> None:
        """Subscribe to a new phone, or again when its contact changed (it re-registered)."""
        current = self._by_phone.get(phone.id)
        if current is not None and current.contact == phone.contact:
            return
        if current is not None:
            self._forget_tokens(current)
        self._by_phone[phone.id] = Subscription(
            phone_id=phone.id, contact=phone.contact, transport=phone.transport
        )
        self._wakeup.set()

    def phone_gone(self, phone_id: str) -> None:
        subscription = self._by_phone.pop(phone_id, None)
        if subscription is not None:
            self._forget_tokens(subscription)

    def lookup(self, token: str) -> Subscription | None:
        """The subscription a NOTIFY's Request-URI user part names, if still valid."""
        entry = self._tokens.get(token)
        if entry is None or entry[1] < self._clock():
            return None
        subscription = entry[0]
        return subscription if self._by_phone.get(subscription.phone_id) is subscription else None

    def terminated(self, subscription: Subscription) -> None:
        """The phone ended the subscription (Subscription-State: terminated): subscribe again."""
        subscription.move("terminated")
        subscription.due_at = self._clock() + 1.0
        self._wakeup.set()

    def __len__(self) -> int:
        return len(self._by_phone)

    def active(self) -> list[Subscription]:
        return [s for s in self._by_phone.values() if s.state == "active"]

    # -- the background task ---------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="subscriptions")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        in_flight: set[asyncio.Task[None]] = set()
        while True:
            now = self._clock()
            for subscription in list(self._by_phone.values()):
                if subscription.state == "active" and subscription.due_at <= now:
                    subscription.move("refresh")
                if (
                    subscription.state == "due"
                    and subscription.due_at <= now
                    and len(in_flight) < 32
                ):
                    subscription.move("send")
                    task = asyncio.create_task(self._subscribe(subscription))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=1.0)

    async def _subscribe(self, subscription: Subscription) -> None:
        token = TOKEN_PREFIX + secrets.token_hex(8)
        now = self._clock()
        # The token is valid before the SUBSCRIBE leaves: the first NOTIFY may beat the 200.
        self._tokens[token] = (subscription, now + self._expires + 30)
        request = self.compose(subscription, token)
        try:
            answer = await asyncio.wait_for(self._sender.send(request), timeout=40)
        except Exception as exc:  # timeouts included: a failed SUBSCRIBE must not kill the task
            answer = SipAnswer(status=408, reason=str(exc) or "timeout", from_wire=False)
        if self._by_phone.get(subscription.phone_id) is not subscription:
            return  # the phone went away or re-registered meanwhile
        if 200 <= answer.status < 300:
            granted = _granted_expires(answer, self._expires)
            subscription.expires_at = self._clock() + granted
            subscription.due_at = self._clock() + max(granted * 0.8, granted - 60)
            subscription.move("accepted")
            log.info(
                "dialog subscription to phone %s active for %d s", subscription.phone_id, granted
            )
        else:
            del self._tokens[token]
            subscription.due_at = self._clock() + self._retry_after
            subscription.move("failed")
            log.warning(
                "dialog subscription to phone %s failed: %d %s; retrying in %g s",
                subscription.phone_id,
                answer.status,
                answer.reason,
                self._retry_after,
            )

    def compose(self, subscription: Subscription, token: str) -> OutgoingRequest:
        host = uri_host(self._listener_host)
        return OutgoingRequest(
            method="SUBSCRIBE",
            target_uri=action_uri.request_uri(subscription.contact, subscription.transport),
            headers=(
                ("Event", "dialog"),
                ("Expires", str(self._expires)),
                ("Contact", f"<sip:{token}@{host}:{self._listener_port()}>"),
            ),
            content_type="",
            body=b"",
            proxy=action_uri.loose_route(self._outbound_proxy),
        )

    def _forget_tokens(self, subscription: Subscription) -> None:
        for token in [t for t, (s, _) in self._tokens.items() if s is subscription]:
            del self._tokens[token]


def _granted_expires(answer: SipAnswer, asked: int) -> int:
    """RFC 6665 §4.1.2.1: the 200's Expires is what the notifier granted (at most what we asked)."""
    if answer.raw is None:
        return asked
    try:
        response = parse_message(answer.raw.encode())
    except (SipParseError, UnicodeEncodeError):
        return asked
    value = response.headers.get("Expires") if isinstance(response, SipResponse) else None
    if value is None or not value.strip().isdigit():
        return asked
    return max(1, min(int(value), asked))
