"""What the tracker knows: phones (a registration) and calls (which phone holds a Call-ID)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Transport = Literal["udp", "tcp", "tls"]
CallState = Literal["ringing", "connected", "held"]
LearnedFrom = Literal["http", "register", "reginfo"]


@dataclass(frozen=True, kw_only=True)
class Phone:
    """A phone's current registration. Times are Unix seconds (UTC)."""

    id: str
    aor: str
    contact: str
    transport: Transport
    user_agent: str | None
    registered_until: float
    updated_at: float
    learned_from: LearnedFrom = "http"
    received: str | None = None  # source host:port of the REGISTER (RFC 3261 §18.2.1)
    registration_call_id: str | None = None
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
