"""Non-INVITE server transactions, sans-I/O (RFC 3261 §17.2.2), for the listener.

Each request is matched to a transaction (§17.2.3). States, as a table:

    (new request)  --receive-->     trying      the core is working on it; retransmissions absorbed
    trying         --provisional--> proceeding  retransmissions get the 100 Trying again
    trying, proceeding --respond--> completed   retransmissions get the final response again
    completed      --Timer J-->  (gone)     64*T1 for UDP; 0 for reliable transports (§17.2.2)

The clock is passed in; nothing here touches a socket.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from sipbridge.sip.message import SipParseError, SipRequest, cseq, header_params

MAGIC_COOKIE = "z9hG4bK"  # RFC 3261 §8.1.1.7: branches of RFC 3261 clients start with it
TIMER_J = 32.0  # 64 * T1 (500 ms)

TransactionKey = tuple[str, ...]


class State(Enum):
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"


class TransactionError(Exception):
    """An impossible transition: responding to a transaction that is not trying."""


@dataclass
class _Entry:
    state: State
    response: bytes | None
    expires: float


@dataclass(frozen=True, kw_only=True)
class Match:
    """What to do with a received request."""

    key: TransactionKey
    is_new: bool
    resend: bytes | None = None  # a retransmission of a completed request: send this again


def transaction_key(request: SipRequest) -> TransactionKey:
    """§17.2.3: branch + sent-by + method; for pre-3261 branches, the §17.2.3 fallback fields."""
    via = request.headers.get("Via")
    if via is None:
        raise SipParseError("Missing Via header")
    sent_by, params = header_params(via)
    branch = params.get("branch") or ""
    method = "INVITE" if request.method == "ACK" else request.method
    if branch.startswith(MAGIC_COOKIE):
        return ("3261", branch, sent_by.strip(), method)
    from_tag = header_params(request.headers.get("From") or "")[1].get("tag") or ""
    number, _ = cseq(request)
    call_id = request.headers.get("Call-ID") or ""
    return ("2543", request.uri, from_tag, call_id, str(number), method, via.strip())


class ServerTransactions:
    """The table of live server transactions, bounded in size."""

    def __init__(self, clock: Callable[[], float], *, max_entries: int = 20_000) -> None:
        self._clock = clock
        self._max_entries = max_entries
        self._entries: OrderedDict[TransactionKey, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def receive(self, request: SipRequest) -> Match:
        """Match a request: new (the core handles it) or a retransmission (absorb or resend)."""
        self._expire()
        key = transaction_key(request)
        entry = self._entries.get(key)
        if entry is not None:
            return Match(key=key, is_new=False, resend=entry.response)
        if len(self._entries) >= self._max_entries:
            self._entries.popitem(last=False)  # oldest first; bounded memory under floods
        self._entries[key] = _Entry(
            state=State.TRYING, response=None, expires=self._clock() + TIMER_J
        )
        return Match(key=key, is_new=True)

    def provisional(self, key: TransactionKey, response: bytes) -> None:
        """Record a provisional response (trying → proceeding), resent on retransmissions."""
        entry = self._entries.get(key)
        if entry is None:
            return
        if entry.state is not State.TRYING:
            raise TransactionError(f"transaction {key} is already {entry.state.value}")
        entry.state = State.PROCEEDING
        entry.response = response

    def respond(self, key: TransactionKey, response: bytes, *, reliable: bool) -> None:
        """Record the final response (trying or proceeding → completed)."""
        entry = self._entries.get(key)
        if entry is None:
            return  # evicted under load; the response still goes out once
        if entry.state is State.COMPLETED:
            raise TransactionError(f"transaction {key} is already {entry.state.value}")
        entry.state = State.COMPLETED
        entry.response = response
        # Over TCP the peer does not retransmit: Timer J is zero (§17.2.2).
        entry.expires = self._clock() + (0.0 if reliable else TIMER_J)
        if reliable:
            del self._entries[key]

    def _expire(self) -> None:
        # Entries are in creation order and none expires before creation + Timer J, so popping
        # from the front until a live one is amortised O(1); an entry behind a slower one may
        # live a little longer, which only means a late retransmission is still answered.
        now = self._clock()
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.expires > now:
                break
            del self._entries[key]
