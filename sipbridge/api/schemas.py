"""Request and response bodies of the front API (/v1). The OpenAPI document is built from these."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, field_validator

from sipbridge.catalog import CALL_ID_PATTERN, CommandSpec
from sipbridge.phone.profiles import Profile
from sipbridge.sip.uri import SipParseError, parse_uri
from sipbridge.tracker import Call, Phone
from sipbridge.tracker.models import PHONE_ID_PATTERN, CommandLogEntry

PhoneId = Annotated[str, StringConstraints(pattern=PHONE_ID_PATTERN)]
CallId = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=CALL_ID_PATTERN)]


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


def _iso(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


# What the OpenAPI can say of a SIP URI (the validator below checks the whole RFC 3261 grammar):
# without it, clients and fuzzers see a free string that the server then refuses.
_SIP_URI_SCHEMA: dict[str, JsonValue] = {
    "pattern": r"^[sS][iI][pP][sS]?:[!-~]+$",  # RFC 3261 §25.1: printable ASCII, no spaces
    "examples": ["sip:1001@10.0.0.5:5060"],
}


class PhoneIn(_In):
    contact: str = Field(
        description="The phone's registered Contact URI, e.g. sip:1001@10.0.0.5:5060.",
        max_length=512,
        json_schema_extra=_SIP_URI_SCHEMA,
    )
    transport: Literal["udp", "tcp", "tls"] | None = Field(
        None, description="Transport the phone registered over; default from the contact, else udp."
    )
    aor: str | None = Field(
        None,
        max_length=512,
        description="Address of record; default sip:<phone>@<contact host>.",
        json_schema_extra=_SIP_URI_SCHEMA,
    )
    user_agent: str | None = Field(None, max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$")
    expires: int = Field(3600, ge=1, le=7 * 86400, description="Seconds the registration lasts.")
    profile: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9-]{0,63}$",
        description="Pin a sip profile (see GET /v1/profiles); default: matched from user_agent.",
    )

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
    learned_from: str = Field(description="http (the feed), register (a REGISTER) or reginfo.")
    received: str | None = Field(description="Source address of the phone's REGISTER.")
    profile: str | None = Field(None, description="The sip profile pinned to the phone, if any.")

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
            learned_from=phone.learned_from,
            received=phone.received,
            profile=phone.profile,
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


# A batch is one SQLite transaction; 1,000 items keep one request well under a second.
BATCH_LIMIT = 1000


class PhoneBatchItem(PhoneIn):
    id: PhoneId = Field(description="Phone id (e.g. the extension).")


class PhoneBatchIn(_In):
    phones: list[PhoneBatchItem] = Field(min_length=1, max_length=BATCH_LIMIT)


class CallBatchItem(CallIn):
    call_id: CallId = Field(description="The call's SIP Call-ID.")


class CallBatchIn(_In):
    calls: list[CallBatchItem] = Field(min_length=1, max_length=BATCH_LIMIT)


class BatchOut(_Out):
    stored: int = Field(description="How many items were written (all of them).")


class CommandIn(_In):
    command_uri: str = Field(
        max_length=256, description="A catalog command-URI, e.g. /api/v1/callctrl/holdCall."
    )
    data: dict[str, Any] | list[Any] = Field(
        default_factory=dict,
        description="The command's data, Poly field names (a list of names for getConfig).",
    )


class DryRunOut(_Out):
    """`?dry_run=true`: the command as it would leave; nothing was sent or recorded."""

    dry_run: Literal[True]
    phone: str
    call_id: str | None
    command_uri: str
    transport: Literal["sip", "http"]
    request: dict[str, Any] = Field(
        description="SIP: method, request_uri, proxy, headers, content_type, body. HTTP: "
        "method, url, query, content_type, body. Credentials are never shown (added later)."
    )


class EventOut(_Out):
    """One event (the `data:` of an SSE message; its `id:` and `event:` are id and type)."""

    id: int
    type: str
    time: float
    phone: str | None
    call_id: str | None
    sequence: int | None = Field(description="Position within its call; null for phones.")
    data: dict[str, Any]
    client_state: str | None


class CommandResultOut(_Out):
    phone: str
    call_id: str | None
    command_uri: str
    transport: Literal["sip", "http"]
    sip_status: int | None = Field(description="The SIP status of the NOTIFY; null over HTTP.")
    sip_reason: str | None
    latency_ms: float
    http_status: int | None = Field(None, description="The phone's HTTP status; null over SIP.")
    poly_status: int | None = Field(None, description="Poly status code, e.g. 2000.")
    poly_meaning: str | None = Field(None, description="What the Poly status code means.")
    data: Any = Field(None, description="What a query command returned (over HTTP).")


class CatalogEntry(_Out):
    name: str
    command_uri: str
    manual_name: str
    group: str
    http_method: str
    delivery: Literal["any", "sip-only", "http-only"]
    firmware: str = Field(description="Firmware lines (and first versions) that have it.")
    summary: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    note: str


class CatalogOut(_Out):
    commands: list[CatalogEntry]

    @classmethod
    def of(cls, specs: Iterable[CommandSpec]) -> CatalogOut:
        return cls(
            commands=[
                CatalogEntry(
                    name=spec.name,
                    command_uri=spec.command_uri,
                    manual_name=spec.manual_name,
                    group=spec.group,
                    http_method=spec.http_method,
                    delivery=spec.delivery,
                    firmware=spec.firmware,
                    summary=spec.summary,
                    input_schema=spec.data_model.model_json_schema(by_alias=True),
                    output_schema=(
                        spec.output_model.model_json_schema(by_alias=True)
                        if spec.output_model
                        else None
                    ),
                    note=spec.note,
                )
                for spec in specs
            ]
        )


class ProfileOut(_Out):
    name: str
    title: str
    family: str
    firmware_line: str | None
    user_agent: list[str]
    rest_api: bool
    rest_over_sip_since: str | None
    http_auth: list[str]
    digest_since: str | None
    session_tokens_since: str | None
    max_sessions: int
    body_limit: int

    @classmethod
    def of(cls, profile: Profile) -> ProfileOut:
        dumped = profile.model_dump(mode="json")
        return cls.model_validate({key: dumped[key] for key in cls.model_fields})


class ProfileList(_Out):
    profiles: list[ProfileOut]


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
    http_status: int | None = None
    poly_status: int | None = None
    poly_meaning: str | None = None
    sent: bool | None = Field(
        None,
        description="504 only: true if the command left for the phone (outcome unknown; a late "
        "answer is recorded in the command log), false if it never left the queue.",
    )


class CommandLogOut(_Out):
    id: int
    at: datetime
    source: str = Field(description="http:<client address> or sip:<transport>:<address>:<port>.")
    phone: str | None
    call_id: str | None
    command_uri: str | None
    transport: str | None
    outcome: str = Field(description="ok, or the error that ended it (e.g. PhoneRejected).")
    status: int | None = Field(description="The phone's SIP (or HTTP) status, when it answered.")
    reason: str
    latency_ms: float | None
    sent: bool | None = Field(
        None, description="For PhoneTimeout: whether the command had left (outcome unknown)."
    )
    late_outcome: str | None = Field(
        None,
        description="For a PhoneTimeout that had left: how its transaction ended after the 504 "
        "(ok, PhoneRejected, PhoneTimeout for Timer F, ...); null while under way.",
    )
    late_status: int | None = Field(None, description="The phone's status in its late answer.")
    late_reason: str | None = None
    late_latency_ms: float | None = Field(
        None, description="From the command's start to its late answer."
    )

    @classmethod
    def of(cls, entry: CommandLogEntry) -> CommandLogOut:
        return cls(
            id=entry.id or 0,
            at=_iso(entry.at or 0.0),
            source=entry.source,
            phone=entry.phone_id,
            call_id=entry.call_id,
            command_uri=entry.command_uri,
            transport=entry.transport,
            outcome=entry.outcome,
            status=entry.status,
            reason=entry.reason,
            latency_ms=entry.latency_ms,
            sent=entry.sent,
            late_outcome=entry.late_outcome,
            late_status=entry.late_status,
            late_reason=entry.late_reason,
            late_latency_ms=entry.late_latency_ms,
        )


class CommandLogPage(_Out):
    commands: list[CommandLogOut]
    next_before: int | None = Field(
        description="Pass as ?before= for the next (older) page; null: no more."
    )
