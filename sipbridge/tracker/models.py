"""What the tracker knows: phones (a registration) and calls (which phone holds a Call-ID)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sipbridge.sip.uri import SipTransport as SipTransport

# A phone's id is the user part of its address of record (e.g. the extension "1001").
PHONE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._~+-]{0,63}$"

CallState = Literal["ringing", "connected", "held"]
LearnedFrom = Literal["http", "register", "reginfo"]


@dataclass(frozen=True, kw_only=True)
class Phone:
    """A phone's current registration. Times are Unix seconds (UTC)."""

    id: str
    aor: str
    contact: str
    transport: SipTransport
    user_agent: str | None
    registered_until: float
    updated_at: float
    learned_from: LearnedFrom = "http"
    received: str | None = None  # source host:port of the REGISTER (RFC 3261 §18.2.1)
    registration_call_id: str | None = None
    registration_cseq: int | None = None
    profile: str | None = None  # pinned by the operator; else matched from user_agent

    def is_registered(self, now: float) -> bool:
        return self.registered_until > now


@dataclass(frozen=True, kw_only=True)
class Call:
    call_id: str
    phone_id: str
    state: CallState
    first_seen: float
    updated_at: float


@dataclass(frozen=True, kw_only=True)
class CommandLogEntry:
    """One command as it was asked for and how it ended (the command log)."""

    source: str  # "http:<client address>" or "sip:<transport>:<address>:<port>"
    outcome: str  # ok, or the problem slug (phone-rejected, phone-timeout, invalid-input, ...)
    reason: str
    phone_id: str | None = None
    call_id: str | None = None
    command_uri: str | None = None
    transport: str | None = None
    status: int | None = None  # the phone's SIP (or HTTP) status when it answered
    latency_ms: float | None = None
    # A 504's: whether the command left (None for other outcomes), and, when it had left, how
    # its transaction really ended once it did (`late_outcome` like `outcome`).
    sent: bool | None = None
    late_outcome: str | None = None
    late_status: int | None = None
    late_reason: str | None = None
    late_latency_ms: float | None = None
    # The caller's own string (the Client-State header), echoed on the events this caused;
    # not kept in the command log itself.
    client_state: str | None = None
    id: int | None = None
    at: float | None = None
