"""PBX-triggered control over SIP: sipbridge as a back-to-back relay for ACTION-URI NOTIFYs.

A PBX (Asterisk, FreeSWITCH, Kamailio...) sends its NOTIFY `Event: ACTION-URI` to sipbridge's
listener, addressed to the phone (`sip:1001@sipbridge`) or to sipbridge itself, the phone then
found from the Call-ID in the body's `Ref` / `Ref-A`. From there the command takes the same path as
an HTTP one (catalog, profile, per-phone queue, transport choice), and the PBX's transaction is
answered with the phone's final status and reason. Every refusal is a SIP status with a Warning
(RFC 3261 §20.43) saying why; the table of which error gives which status is `SIP_STATUS` below.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from sipbridge import catalog, errors
from sipbridge.command_log import CommandLog
from sipbridge.control import CallControl, CommandResult
from sipbridge.sip.listener import Reply, Source
from sipbridge.sip.message import SipParseError, SipRequest, header_params, parse_uri
from sipbridge.tracker.store import TrackerStore

WARN_AGENT = "sipbridge"
_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\]')

# Most specific first: the first matching class decides (the SIP twin of api/problems.py).
SIP_STATUS: tuple[tuple[type[errors.SipBridgeError], int, str], ...] = (
    (errors.MalformedBody, 400, "Bad Request"),
    (errors.UnsupportedMediaType, 415, "Unsupported Media Type"),
    (errors.PayloadTooLarge, 413, "Request Entity Too Large"),
    (errors.UnknownPhone, 404, "Not Found"),
    (errors.UnknownCall, 404, "Not Found"),
    (errors.NotFound, 404, "Not Found"),
    (errors.NotSupportedByPhone, 488, "Not Acceptable Here"),
    (errors.TransportUnavailable, 488, "Not Acceptable Here"),
    (errors.InvalidInput, 400, "Bad Request"),
    (errors.QueueFull, 503, "Service Unavailable"),
    (errors.PhoneBusy, 503, "Service Unavailable"),
    # RFC 3261 §21.5.5: 504, an external server (DNS) did not answer in time.
    (errors.ContactResolutionTimeout, 504, "Server Time-out"),
    (errors.PhoneTimeout, 408, "Request Timeout"),
    (errors.ContactNotAllowed, 403, "Forbidden"),
    (errors.ContactUnresolvable, 480, "Temporarily Unavailable"),
    (errors.PhoneUnreachable, 480, "Temporarily Unavailable"),
    (errors.PhoneRefused, 502, "Bad Gateway"),
    (errors.PhoneAuthFailed, 502, "Bad Gateway"),
    (errors.StoreError, 500, "Server Internal Error"),
)


def warning(text: str) -> tuple[str, str]:
    """A Warning header value: 399 (miscellaneous) from sipbridge, text made safe to quote."""
    return ("Warning", f'399 {WARN_AGENT} "{_UNSAFE.sub(" ", text)[:200]}"')


def refusal(exc: errors.SipBridgeError) -> Reply:
    if isinstance(exc, errors.PhoneRejected):
        # The phone's own answer goes back to the PBX as it was.
        return Reply(status=exc.sip_status, reason=exc.sip_reason, headers=(warning(exc.detail),))
    status, reason = 500, "Server Internal Error"
    for cls, code, text in SIP_STATUS:
        if isinstance(exc, cls):
            status, reason = code, text
            break
    headers = [warning(exc.detail)]
    if isinstance(exc, errors.QueueFull):
        headers.append(("Retry-After", str(exc.retry_after)))
    return Reply(status=status, reason=reason, headers=tuple(headers))


class ActionUriRelay:
    def __init__(
        self,
        store: TrackerStore,
        control: CallControl,
        command_log: CommandLog,
        *,
        deadline: float,
    ) -> None:
        self._store = store
        self._control = control
        self._log = command_log
        self._deadline = deadline

    async def relay(self, request: SipRequest, source: Source) -> Reply:
        """The whole relay for one NOTIFY; never raises, always a final reply in time."""
        try:
            async with asyncio.timeout(self._deadline):
                result = await self._log.run(f"sip:{source}", self._relay(request))
        except TimeoutError:
            return Reply(
                status=408,
                reason="Request Timeout",
                headers=(warning(f"no answer from the phone within {self._deadline:g} s"),),
            )
        except errors.SipBridgeError as exc:
            return refusal(exc)
        return _success(result)

    async def _relay(self, request: SipRequest) -> CommandResult:
        command_uri, data = parse_body(request)
        phone_id = self._phone_for(request, data)
        return await self._control.send_command(phone_id, command_uri, data)

    def _phone_for(self, request: SipRequest, data: dict[str, Any]) -> str:
        """(a) The Request-URI names a registered phone; (b) else the body's Ref names a call."""
        try:
            user = parse_uri(request.uri).user
        except SipParseError:
            user = None
        if user:
            try:
                return self._store.phone(user).id
            except errors.UnknownPhone:
                pass
        ref = data.get("Ref") or data.get("Ref-A")
        if not isinstance(ref, str) or not ref:
            raise errors.NotFound(
                f"no registered phone {user!r} and no Ref / Ref-A in the body to find one by"
                if user
                else "no Ref / Ref-A in the body to find the phone by"
            )
        return self._store.locate(ref)[1].id


def parse_body(request: SipRequest) -> tuple[str, dict[str, Any]]:
    """The body as the phone would take it: JSON, at most 20 KB, exactly one command."""
    media = header_params(request.headers.get("Content-Type") or "")[0].strip().lower()
    if media != "application/json":
        raise errors.UnsupportedMediaType(
            f"the body must be application/json, not {media or 'absent'}"
        )
    if len(request.body) > catalog.MAX_BODY_BYTES:
        raise errors.PayloadTooLarge(
            f"the body is {len(request.body)} bytes; Poly phones accept {catalog.MAX_BODY_BYTES}"
        )
    try:
        document = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.MalformedBody(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or set(document) - {"command-URI", "data"}:
        raise errors.MalformedBody("the body must hold exactly one command")
    command_uri = document.get("command-URI")
    data = document.get("data", {})
    if not isinstance(command_uri, str) or not isinstance(data, dict):
        raise errors.MalformedBody('the body needs "command-URI" (a string) and "data" (an object)')
    return command_uri.strip(), data


def _success(result: CommandResult) -> Reply:
    if result.sip_status is not None:
        return Reply(status=result.sip_status, reason=result.sip_reason or "OK")
    # Delivered over the phone's HTTP API (old firmware): say so, with the Poly status.
    detail = f"delivered over HTTP; Poly status {result.poly_status}"
    return Reply(status=200, reason="OK", headers=(warning(detail),))
