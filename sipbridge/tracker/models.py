"""What the tracker knows: phones (a registration) and calls (which phone holds a Call-ID)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Transport = Literal["udp", "tcp", "tls"]
CallState = Literal["ringing", "connected", "held"]


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

    def is_registered(self, now: float) -> bool:
        return self.registered_until > now


@dataclass(frozen=True, kw_only=True)
class Call:
    call_id: str
    phone_id: str
    state: CallState
    first_seen: float
    updated_at: float
