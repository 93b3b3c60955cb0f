"""What a REGISTER means for the tracker, sans-I/O (RFC 3261 §10.3).

sipbridge sees REGISTERs either straight from phones pointed at it or as copies a registrar
replicates (Kamailio `t_replicate`). Either way it keeps one binding per phone, whose id is the
user part of the address of record in To. The decision is a value; the listener applies it.

A replicated copy arrives with the registrar's Via on top, so the phone's own address and
transport are read from the bottom Via (its `received` / `rport` when the registrar added them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import formatdate

from sipbridge.sip.message import (
    SipParseError,
    SipRequest,
    cseq,
    header_params,
    parse_name_addr,
    parse_uri,
    uri_host,
)
from sipbridge.tracker.models import PHONE_ID_PATTERN, Phone, SipTransport

DEFAULT_EXPIRES = 3600
MIN_EXPIRES = 60
MAX_EXPIRES = 7 * 86400
_PHONE_ID = re.compile(PHONE_ID_PATTERN)


@dataclass(frozen=True, kw_only=True)
class Binding:
    """A registration to store."""

    phone_id: str
    aor: str
    contact: str
    expires: int
    transport: SipTransport
    received: str | None
    user_agent: str | None
    call_id: str
    cseq: int


@dataclass(frozen=True, kw_only=True)
class RegisterDecision:
    """The response to send, and what to change: bind, or remove `unbind`, or nothing."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()
    bind: Binding | None = None
    unbind: str | None = None


def _refuse(status: int, reason: str, *headers: tuple[str, str]) -> RegisterDecision:
    return RegisterDecision(status=status, reason=reason, headers=headers)


def decide(request: SipRequest, *, current: Phone | None, now: float) -> RegisterDecision:
    """Decide on one REGISTER. `current` is the phone's stored record, expired or not."""
    try:
        return _decide(request, current=current, now=now)
    except SipParseError as exc:
        return _refuse(400, exc.reason)


def _decide(request: SipRequest, *, current: Phone | None, now: float) -> RegisterDecision:
    _, to_uri, _ = parse_name_addr(request.headers.get("To") or "")
    phone_id = to_uri.user or ""
    if not _PHONE_ID.fullmatch(phone_id):
        return _refuse(404, "Not Found")  # §10.3 step 3: not an AOR we can track
    aor = f"{to_uri.scheme}:{phone_id}@{to_uri.host}"
    call_id = request.headers.get("Call-ID") or ""
    number, _ = cseq(request)

    # §10.3 step 7: a refresh with the same Call-ID must carry a higher CSeq.
    if (
        current is not None
        and current.registration_call_id == call_id
        and current.registration_cseq is not None
        and number <= current.registration_cseq
    ):
        return _refuse(500, "Out Of Order", ("Retry-After", "1"))

    contacts = request.headers.get_all("Contact")
    header_expires = _expires(request.headers.get("Expires"))
    date = ("Date", formatdate(now, usegmt=True))

    if not contacts:  # a query: answer with the current binding (§10.3 step 8)
        return RegisterDecision(
            status=200, reason="OK", headers=(*_binding_headers(current, now), date)
        )

    if any(c.strip() == "*" for c in contacts):
        # §10.3 step 6: '*' only alone and only with Expires: 0.
        if len(contacts) != 1 or header_expires != 0:
            return _refuse(400, "Invalid Wildcard")
        return RegisterDecision(status=200, reason="OK", headers=(date,), unbind=phone_id)

    chosen: tuple[str, int] | None = None
    removals = 0
    for value in contacts:
        _, uri, params = parse_name_addr(value)
        expires = _expires(params.get("expires"))
        if expires is None:
            expires = DEFAULT_EXPIRES if header_expires is None else header_expires
        if expires == 0:
            removals += 1
            continue
        if expires < MIN_EXPIRES:  # §10.3 step 6: 423 with Min-Expires
            return _refuse(423, "Interval Too Brief", ("Min-Expires", str(MIN_EXPIRES)))
        chosen = (str(uri), min(expires, MAX_EXPIRES))  # one binding per phone: the last wins

    if chosen is None:
        if removals and current is not None:
            return RegisterDecision(status=200, reason="OK", headers=(date,), unbind=phone_id)
        return RegisterDecision(status=200, reason="OK", headers=(date,))

    contact, expires = chosen
    transport, received = _phone_address(request)
    # `contact` is the bare URI: as a name-addr its ;transport= would read as a header param.
    contact_transport = parse_uri(contact).transport
    if contact_transport in ("udp", "tcp", "tls"):
        transport = contact_transport  # type: ignore[assignment]
    binding = Binding(
        phone_id=phone_id,
        aor=aor,
        contact=contact,
        expires=expires,
        transport=transport,
        received=received,
        user_agent=request.headers.get("User-Agent"),
        call_id=call_id,
        cseq=number,
    )
    return RegisterDecision(
        status=200,
        reason="OK",
        headers=((("Contact", f"<{contact}>;expires={expires}")), date),
        bind=binding,
    )


def _expires(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit() or len(text) > 10:
        raise SipParseError("Invalid Expires")
    return int(text)


def _binding_headers(current: Phone | None, now: float) -> tuple[tuple[str, str], ...]:
    if current is None or not current.is_registered(now):
        return ()
    left = max(0, int(current.registered_until - now))
    return (("Contact", f"<{current.contact}>;expires={left}"),)


def _phone_address(request: SipRequest) -> tuple[SipTransport, str | None]:
    """The phone's transport and source address, from the bottom Via (RFC 3261 §18.2.1)."""
    vias = request.headers.get_all("Via")
    if not vias:
        return "udp", None
    sent_by, params = header_params(vias[-1])
    protocol, _, host_port = sent_by.strip().partition(" ")
    transport_name = protocol.rsplit("/", 1)[-1].strip().lower()
    transport: SipTransport = "udp"
    if transport_name in ("tcp", "tls"):
        transport = transport_name  # type: ignore[assignment]
    host, port = _split_host_port(host_port.strip())
    received_host = params.get("received") or host
    rport = params.get("rport")
    if rport:
        port = rport
    return transport, f"{uri_host(received_host)}:{port or '5060'}"


def _split_host_port(text: str) -> tuple[str, str | None]:
    if text.startswith("["):
        host, _, rest = text.partition("]")
        return host + "]", rest[1:] or None
    host, _, port = text.partition(":")
    return host, port or None
