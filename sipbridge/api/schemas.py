"""Request and response bodies of the front API (/v1). The OpenAPI document is built from these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from sipbridge.catalog._fields import CALL_ID_PATTERN
from sipbridge.sip.uri import SipParseError, parse_uri
from sipbridge.tracker import Call, Phone

PHONE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._~+-]{0,63}$"
PhoneId = Annotated[str, StringConstraints(pattern=PHONE_ID_PATTERN)]
CallId = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=CALL_ID_PATTERN)]


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


def _iso(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


class PhoneIn(_In):
    contact: str = Field(
        description="The phone's registered Contact URI, e.g. sip:1001@10.0.0.5:5060.",
        max_length=512,
    )
    transport: Literal["udp", "tcp", "tls"] | None = Field(
        None, description="Transport the phone registered over; default from the contact, else udp."
    )
    aor: str | None = Field(
        None, max_length=512, description="Address of record; default sip:<phone>@<contact host>."
    )
    user_agent: str | None = Field(None, max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$")
    expires: int = Field(3600, ge=1, le=7 * 86400, description="Seconds the registration lasts.")

    @field_validator("contact", "aor")
    @classmethod
    def _sip_uri(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            uri = parse_uri(value)
        except SipParseError as exc:
            raise ValueError(f"not a SIP URI: {exc.reason}") from exc
        if uri.scheme not in ("sip", "sips"):
            raise ValueError("must be a sip: or sips: URI")
        return value


class PhoneOut(_Out):
    id: str
    aor: str
    contact: str
    transport: str
    user_agent: str | None
    registered_until: datetime
    updated_at: datetime

    @classmethod
    def of(cls, phone: Phone) -> PhoneOut:
        return cls(
            id=phone.id,
            aor=phone.aor,
            contact=phone.contact,
            transport=phone.transport,
            user_agent=phone.user_agent,
            registered_until=_iso(phone.registered_until),
            updated_at=_iso(phone.updated_at),
        )


class CallIn(_In):
    phone: PhoneId = Field(description="The phone that holds the call.")
    state: Literal["ringing", "connected", "held"] = "connected"


class CallOut(_Out):
    call_id: str
    phone: str
    state: str
    first_seen: datetime
    updated_at: datetime

    @classmethod
    def of(cls, call: Call) -> CallOut:
        return cls(
            call_id=call.call_id,
            phone=call.phone_id,
            state=call.state,
            first_seen=_iso(call.first_seen),
            updated_at=_iso(call.updated_at),
        )


class CommandIn(_In):
    command_uri: str = Field(
        max_length=256, description="A catalog command-URI, e.g. /api/v1/callctrl/holdCall."
    )
    data: dict[str, Any] = Field(
        default_factory=dict, description="The command's data, Poly field names."
    )


class CommandResultOut(_Out):
    phone: str
    call_id: str | None
    command_uri: str
    transport: Literal["sip"]
    sip_status: int
    sip_reason: str
    latency_ms: float


class PhoneList(_Out):
    phones: list[PhoneOut]


class CallList(_Out):
    calls: list[CallOut]


class Problem(_Out):
    """RFC 9457 problem details, plus the failed command's facts where there are some."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, str]] | None = None
    sip_status: int | None = None
    sip_reason: str | None = None
