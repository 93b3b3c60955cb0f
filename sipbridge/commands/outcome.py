"""The one place that decides what a phone's answer means for the caller, and what the caller
learns (`CommandResult`).

A 2xx final response means the phone took the command. Any other final response from the wire is
the phone's refusal (502 to the caller, with the phone's status and reason; 503 with its
Retry-After when the phone said 503), carrying the headers of the answer a relay needs. A status
the UA made up itself is about the path, not the phone: 408 (Timer F, RFC 3261 §17.1.2.2)
means no answer; anything else means the phone could not be reached.

Over HTTP the phone's REST API answers a Poly status code in its JSON body (manual 002, "Error
Codes"); `accept_http_answer` turns it into the same kinds of result, with the code and its
meaning kept for the caller.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

from sipbridge.commands.plan import Carrier
from sipbridge.errors import (
    PhoneAuthFailed,
    PhoneBusy,
    PhoneRefused,
    PhoneRejected,
    PhoneTimeout,
    PhoneUnavailable,
    PhoneUnreachable,
)
from sipbridge.phone.http import HttpAnswer
from sipbridge.sip.action_uri import SipAnswer
from sipbridge.sip.message import SipParseError, SipResponse, parse_message

# Headers of a phone's refusal that whoever answers for it may have to pass on (RFC 3261
# §20: the challenges of 401/407, Allow of 405, Accept* of 415, Allow-Events of 489).
KEPT_HEADERS = (
    "WWW-Authenticate",
    "Proxy-Authenticate",
    "Allow",
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Allow-Events",
)
_CHALLENGES = frozenset({"WWW-Authenticate", "Proxy-Authenticate"})
_DELTA_SECONDS = re.compile(r"\s*(\d{1,10})")
MAX_RETRY_AFTER = 86_400  # a day: a larger value from a phone is a mistake, not advice


@dataclass(frozen=True, kw_only=True)
class CommandResult:
    """What the caller learns: who got which command, and what the phone answered."""

    phone: str
    call_id: str | None
    command_uri: str
    transport: Carrier
    sip_status: int | None
    sip_reason: str | None
    latency_ms: float
    # Over HTTP: the phone's HTTP status, its Poly status code and meaning, and what it returned.
    http_status: int | None = None
    poly_status: int | None = None
    poly_meaning: str | None = None
    data: Any = None

    @property
    def status(self) -> int | None:
        """The phone's own status: SIP over SIP, HTTP over HTTP."""
        return self.sip_status if self.sip_status is not None else self.http_status


def accept_sip_answer(answer: SipAnswer) -> SipAnswer:
    """Return the answer if the phone accepted the command; raise the fitting RemoteError if not."""
    if 200 <= answer.status < 300:
        return answer
    if answer.from_wire:
        headers, retry_after = _refusal_headers(answer.raw)
        refusal = PhoneUnavailable if answer.status == 503 else PhoneRejected
        raise refusal(
            f"the phone answered {answer.status} {answer.reason}",
            sip_status=answer.status,
            sip_reason=answer.reason,
            headers=headers,
            retry_after=retry_after,
        )
    if answer.status == 408:
        # Timer F: the NOTIFY left and was never answered; the phone may still have acted.
        raise PhoneTimeout(
            "the NOTIFY was sent and the phone never answered it (SIP Timer F); its outcome "
            "is not known",
            sent=True,
        )
    detail = f"the NOTIFY could not be sent: {answer.status} {answer.reason}"
    if "certificate verification" in answer.reason.lower():
        # pjsip's words for a failed TLS handshake check (chain or name, RFC 5922 §7).
        detail = (
            "TLS verification of the phone failed: its certificate is not signed by a CA of "
            "tls_ca_file (default: the system's) or does not name the phone (its contact's "
            "host name, or its address for a numeric contact) "
            f"({answer.status} {answer.reason})"
        )
    raise PhoneUnreachable(detail)


# Manual 002, "Error Codes": what each Poly status code says (in our words).
POLY_STATUS: dict[int, str] = {
    2000: "success",
    4000: "invalid input parameters",
    4001: "device busy",
    4002: "line not registered",
    4003: "operation not allowed",
    4004: "operation not supported",
    4005: "line does not exist",
    4006: "URLs not configured",
    4007: "call does not exist",
    4008: "configuration export failed",
    4009: "input size limit exceeded",
    4010: "default password not allowed (change the phone's admin password)",
    4011: "contact not found",
    4400: "bad request",
    4403: "forbidden",
    5000: "failed to process the request",
    5500: "internal server error",
}
POLY_OK = 2000
POLY_BUSY = 4001


@dataclass(frozen=True, kw_only=True)
class HttpOutcome:
    """A command the phone's REST API carried out, and what it returned."""

    http_status: int
    poly_status: int | None
    poly_meaning: str | None
    data: Any


def accept_http_answer(answer: HttpAnswer) -> HttpOutcome:
    """Return the outcome if the phone's REST API did the command; raise the fitting error if not.

    The Poly code decides where there is one; without one (a bare 403 while another request
    runs, manual 002 prerequisites; 401; a non-JSON body) the HTTP status does.
    """
    document = _json_object(answer)
    code = _poly_code(document)
    meaning = POLY_STATUS.get(code, "unknown Poly status") if code is not None else None
    if answer.status == 401:
        raise PhoneAuthFailed(
            "the phone refused sipbridge's credentials (see phone_credentials_file and the "
            "phone's httpd.rest.auth.* settings)"
        )
    if 200 <= answer.status < 300 and code in (None, POLY_OK):
        return HttpOutcome(
            http_status=answer.status,
            poly_status=code,
            poly_meaning=meaning,
            data=_data(answer, document),
        )
    detail = f"the phone answered HTTP {answer.status} {answer.reason}".rstrip()
    if code is not None:
        detail += f", Poly status {code}: {meaning}"
    refusal = PhoneBusy if code == POLY_BUSY or (answer.status == 403 and code is None) else None
    raise (refusal or PhoneRefused)(
        detail, http_status=answer.status, poly_status=code, poly_meaning=meaning
    )


def _refusal_headers(raw: str | None) -> tuple[tuple[tuple[str, str], ...], int | None]:
    """The kept headers and the Retry-After (seconds, RFC 3261 §20.33) of the phone's answer.

    An answer pjsip accepted but our stricter parser does not yields none: the status and
    reason still tell what happened.
    """
    if raw is None:
        return (), None
    try:
        response = parse_message(raw.encode("utf-8", "surrogateescape"))
    except (SipParseError, UnicodeError):
        return (), None
    if not isinstance(response, SipResponse):
        return (), None
    kept: list[tuple[str, str]] = []
    for name in KEPT_HEADERS:
        values = response.headers.get_all(name)
        if name in _CHALLENGES:
            kept += [(name, value) for value in values]  # one challenge a header line
        elif values:
            kept.append((name, ", ".join(values)))  # a comma list (§7.3.1), one line again
    retry_after = None
    match = _DELTA_SECONDS.match(response.headers.get("Retry-After") or "")
    if match:
        retry_after = min(int(match.group(1)), MAX_RETRY_AFTER)
    return tuple(kept), retry_after


def _json_object(answer: HttpAnswer) -> dict[str, Any] | None:
    if "json" not in answer.content_type:
        return None
    try:
        document = json.loads(answer.body)
    except (ValueError, UnicodeDecodeError):
        return None
    return document if isinstance(document, dict) else None


def _poly_code(document: dict[str, Any] | None) -> int | None:
    # Manuals show Status both as "2000" and as 2000.
    status = (document or {}).get("Status")
    if isinstance(status, int) or (isinstance(status, str) and status.isdigit()):
        return int(status)
    return None


def _data(answer: HttpAnswer, document: dict[str, Any] | None) -> Any:
    """What the command returned: `data` where the phone nests it, else the other top-level
    fields (ping, powerStatus and getPresence answer beside Status); binary as base64."""
    if document is None:
        if not answer.body:
            return None
        return {
            "content_type": answer.content_type,
            "base64": base64.b64encode(answer.body).decode(),
        }
    if "data" in document:
        return document["data"]
    rest = {key: value for key, value in document.items() if key != "Status"}
    return rest or None
