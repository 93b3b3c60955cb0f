"""PBX-triggered control over SIP: sipbridge as a back-to-back relay for ACTION-URI NOTIFYs.

A PBX (Asterisk, FreeSWITCH, Kamailio...) sends its NOTIFY `Event: ACTION-URI` to sipbridge's
listener, addressed to the phone (`sip:1001@sipbridge`) or to sipbridge itself, the phone then
found from the Call-ID in the body's `Ref` / `Ref-A`. From there the command takes the same path as
an HTTP one (catalog, profile, per-phone queue, transport choice), and the PBX's transaction is
answered with what the phone's answer means for the PBX: the phone's own status where it is a
verdict on the command, another where passing it on would break a SIP rule (a challenge meant
for sipbridge, a 503 that would make sipbridge look down, a 408 to a non-INVITE). Every refusal
carries a Warning (RFC 3261 §20.43) saying why; `SIP_STATUS` below is the whole table, with the
reason for each row.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sipbridge import catalog, errors
from sipbridge.commands import CallControl, CommandResult, PbxCommand
from sipbridge.sip.listener import Reply, Source
from sipbridge.sip.message import SipParseError, SipRequest, header_params, parse_uri

WARN_AGENT = "sipbridge"
_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\]')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, kw_only=True)
class SipRule:
    """One row of the table below: what the PBX gets for an error, and why."""

    error: type[errors.SipBridgeError]
    status: int | None  # None: the phone's own status and reason
    reason: str = ""
    why: str
    # PhoneRejected rows only: the phone's statuses the row is for (None: any).
    phone: range | tuple[int, ...] | None = None
    # Headers of the phone's answer the row needs (absent: the next row decides) and passes on.
    needs: tuple[str, ...] = ()
    keeps: tuple[str, ...] = ()
    adds: tuple[tuple[str, str], ...] = ()  # headers of sipbridge's own


def _statuses(*spans: range | int) -> tuple[int, ...]:
    return tuple(code for span in spans for code in ([span] if isinstance(span, int) else span))


# The SIP twin of api/problems.py, and the one place that decides what a PBX is answered.
# Most specific first: the first matching row decides. Every row adds the error's Warning
# (RFC 3261 §20.43) and, when the error has one, Retry-After (problems.py adds the same).
SIP_STATUS: tuple[SipRule, ...] = (
    # -- the phone answered with a refusal (PhoneRejected: its status, reason, headers) --------
    SipRule(
        error=errors.PhoneRejected, phone=(401, 407), status=403, reason="Forbidden",
        why="The challenge is for sipbridge's own NOTIFY to the phone, not for the PBX's request: "
        "a B2BUA ends the transaction it started (§16.7 step 7 lets a proxy collect challenges "
        "only for requests it forwarded as they were). Passing it on would ask the PBX for the "
        "phone's credentials, which it cannot use for our NOTIFY (the digest covers our URI and "
        "CSeq). sipbridge already retried with its own credentials if it has any; 403, because "
        "authorising the PBX's request again would not help (§21.4.4).",
    ),
    SipRule(
        error=errors.PhoneRejected, phone=(408,), status=504, reason="Server Time-out",
        why="RFC 4320 §4.2: no 408 to a non-INVITE. The phone gave up on something it waited for: "
        "504, a server further on did not answer in time (§21.5.5).",
    ),
    SipRule(
        error=errors.PhoneUnavailable, status=480, reason="Temporarily Unavailable",
        why="A 503 sent upstream says sipbridge itself can take no request (§16.7 step 6, "
        "§21.5.4; RFC 3263 §4.3 moves the PBX to another server, for every phone). One "
        "phone's overload is that phone's: 480 names the callee and keeps its Retry-After "
        "(§21.4.18).",
    ),
    SipRule(
        error=errors.PhoneRejected, phone=_statuses(range(300, 400)), status=502,
        reason="Bad Gateway",
        why="sipbridge does not follow a phone's redirect of a command; passing the 3xx on "
        "would send the PBX around sipbridge to the phone's Contact.",
    ),
    SipRule(
        error=errors.PhoneRejected, phone=(405,), needs=("Allow",), keeps=("Allow",),
        status=None,
        why="The phone takes no NOTIFY: pass it on with the phone's Allow, which §21.4.6 requires.",
    ),
    SipRule(
        error=errors.PhoneRejected, phone=_statuses(405, 420, 421, 423, 494), status=502,
        reason="Bad Gateway",
        why="About sipbridge's own request (its extensions, §21.4.15-16; or a 405 without the "
        "Allow §21.4.6 requires, an invalid answer, §21.5.3): the PBX can change nothing.",
    ),
    SipRule(
        error=errors.PhoneRejected, status=None,
        keeps=("Allow-Events", "Accept", "Accept-Encoding", "Accept-Language"),
        why="The phone's verdict on the command (403 Operation Not Allowed, 489 Bad Event, 486, "
        "6xx...): passed on as the phone gave it, with the headers that explain it (§21.4.13 "
        "Accept*, RFC 6665 §8.3.2 Allow-Events) and its Retry-After.",
    ),
    # -- sipbridge refused or failed itself -----------------------------------------------------
    SipRule(error=errors.MalformedBody, status=400, reason="Bad Request", why="§21.4.1."),
    SipRule(
        error=errors.UnsupportedMediaType, status=415, reason="Unsupported Media Type",
        adds=(("Accept", "application/json"),), why="§21.4.13: Accept says what would do.",
    ),
    SipRule(
        error=errors.PayloadTooLarge, status=413, reason="Request Entity Too Large",
        why="§21.4.11: Poly's 20 KB body limit.",
    ),
    SipRule(
        error=errors.Unauthorized, status=403, reason="Forbidden",
        why="The listener's allowlist and digest answer for themselves; a 401 here would need a "
        "challenge (§21.4.2) that the relay does not make.",
    ),
    SipRule(
        error=errors.Forbidden, status=403, reason="Forbidden",
        why="Authenticated but not allowed (a device-API level): §21.4.4, no retry helps.",
    ),
    SipRule(
        error=errors.Conflict, status=400, reason="Bad Request",
        why="The request contradicts the tracked state (a state guard); SIP has no 409, and a "
        "400 with its Warning says which (§21.4.1). Relayed commands are raw: not guarded today.",
    ),
    SipRule(error=errors.NotFound, status=404, reason="Not Found", why="No such phone or call."),
    SipRule(
        error=errors.NotSupportedByPhone, status=488, reason="Not Acceptable Here",
        why="The phone's profile lacks the command (§21.4.26, the Warning says why).",
    ),
    SipRule(
        error=errors.TransportUnavailable, status=488, reason="Not Acceptable Here",
        why="The command cannot travel over the transport the phone has (§21.4.26).",
    ),
    SipRule(
        error=errors.InvalidInput, status=400, reason="Bad Request",
        why="A field of the command breaks its rule (§21.4.1; the Warning names it).",
    ),
    SipRule(
        error=errors.QueueFull, status=480, reason="Temporarily Unavailable",
        why="One phone's queue is full, not sipbridge: no 503 (§16.7 step 6, as for the phone's "
        "503 above); 480 with Retry-After (§21.4.18).",
    ),
    SipRule(error=errors.RequestError, status=400, reason="Bad Request", why="§21.4.1."),
    SipRule(
        error=errors.PhoneBusy, status=486, reason="Busy Here",
        why="Poly 4001 / 403 over HTTP: the phone is busy with another client's request; 486 "
        "with Retry-After (§21.4.24), the phone's state and not sipbridge's.",
    ),
    SipRule(
        error=errors.ContactResolutionTimeout, status=504, reason="Server Time-out",
        why="DNS did not answer for the phone's contact (RFC 3263): an external server timed "
        "out (§21.5.5); nothing was sent.",
    ),
    SipRule(
        error=errors.ContactNotAllowed, status=403, reason="Forbidden",
        why="The phone's contact resolves outside phone_networks: sipbridge will not send there "
        "(§21.4.4, retrying would not help).",
    ),
    SipRule(
        error=errors.ContactUnresolvable, status=480, reason="Temporarily Unavailable",
        why="The contact's name has no address (RFC 3263 §4): the callee cannot be reached now.",
    ),
    SipRule(
        error=errors.PhoneTimeout, status=504, reason="Server Time-out",
        why="RFC 4320 §4.2: never 408 to a non-INVITE. The relay's deadline (sip_relay_deadline, "
        "at most 30 s) ends before the PBX's Timer F (64*T1 = 32 s), so the PBX still hears 504: "
        "the phone did not answer in time (§21.5.5).",
    ),
    SipRule(
        error=errors.PhoneUnreachable, status=480, reason="Temporarily Unavailable",
        why="No route or transport to the phone (§21.4.18): the callee, not sipbridge.",
    ),
    SipRule(
        error=errors.PhoneAuthFailed, status=403, reason="Forbidden",
        why="The phone's REST API refused sipbridge's credentials: the same case as a phone's "
        "401/407 above.",
    ),
    SipRule(
        error=errors.PhoneRefused, status=502, reason="Bad Gateway",
        why="The phone's REST API answered a Poly failure code; the Warning carries it.",
    ),
    SipRule(error=errors.RemoteError, status=502, reason="Bad Gateway", why="§21.5.3."),
    SipRule(
        error=errors.StoreError, status=500, reason="Server Internal Error",
        why="sipbridge's database failed: our fault (§21.5.1); no 503, which would have the PBX "
        "retry elsewhere with no Retry-After to bound it.",
    ),
    SipRule(
        error=errors.SipBridgeError, status=500, reason="Server Internal Error",
        why="Anything else (a profile or startup error): ours, §21.5.1.",
    ),
)


def warning(text: str) -> tuple[str, str]:
    """A Warning header value: 399 (miscellaneous) from sipbridge, text made safe to quote."""
    return ("Warning", f'399 {WARN_AGENT} "{_UNSAFE.sub(" ", text)[:200]}"')


def rule_for(exc: errors.SipBridgeError) -> SipRule:
    """The first row of `SIP_STATUS` that fits `exc` (the last row fits every error)."""
    for rule in SIP_STATUS:
        if not isinstance(exc, rule.error):
            continue
        if isinstance(exc, errors.PhoneRejected):
            if rule.phone is not None and exc.sip_status not in rule.phone:
                continue
            present = {name.lower() for name, _ in exc.headers}
            if any(name.lower() not in present for name in rule.needs):
                continue
        return rule
    raise AssertionError(f"no SIP_STATUS row for {type(exc).__name__}")


def refusal(exc: errors.SipBridgeError) -> Reply:
    """The PBX's answer for an error, by `SIP_STATUS`."""
    rule = rule_for(exc)
    headers = [warning(exc.detail)]
    status, reason = rule.status, rule.reason
    if isinstance(exc, errors.PhoneRejected):
        if status is None:
            status, reason = exc.sip_status, _CONTROL.sub(" ", exc.sip_reason)[:100]
        keeps = {name.lower() for name in rule.keeps}
        headers += [(name, value) for name, value in exc.headers if name.lower() in keeps]
    assert status is not None, "a row without a status is a PhoneRejected row"
    headers += rule.adds
    if exc.retry_after is not None:
        headers.append(("Retry-After", str(exc.retry_after)))
    return Reply(status=status, reason=reason or "Unknown", headers=tuple(headers))


@dataclass
class RelayStats:
    """Relayed NOTIFYs, counted for the KPIs (admin/kpi.py)."""

    received: int = 0
    succeeded: int = 0
    refused: int = 0


class ActionUriRelay:
    """The PBX's NOTIFY into the command path, and the command's end into the PBX's answer."""

    def __init__(self, control: CallControl, *, deadline: float) -> None:
        self._control = control
        self.stats = RelayStats()
        # Under the PBX's Timer F, so the PBX hears the answer (a 504, never a 408: RFC 4320
        # §4.2); the command path's lanes keep it, and a late answer is still recorded.
        self._deadline = deadline

    async def relay(self, request: SipRequest, source: Source) -> Reply:
        """The whole relay for one NOTIFY; never raises, always a final reply in time."""
        self.stats.received += 1
        try:
            result = await self._control.pbx_command(
                lambda: parse_command(request), source=f"sip:{source}", deadline=self._deadline
            )
        except errors.SipBridgeError as exc:
            self.stats.refused += 1
            return refusal(exc)
        self.stats.succeeded += 1
        return _success(result)


def parse_command(request: SipRequest) -> PbxCommand:
    """The command of an ACTION-URI NOTIFY, and the phone its Request-URI names (if any)."""
    command_uri, data = parse_body(request)
    try:
        user = parse_uri(request.uri).user
    except SipParseError:
        user = None
    return PbxCommand(command_uri=command_uri, data=data, phone_user=user or None)


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
