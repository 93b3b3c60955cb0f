"""A simulated Poly phone's behaviour, sans-I/O: a NOTIFY's parts in, a SIP status out.

It follows manual 002: REST over SIP needs `Event: ACTION-URI`, a JSON content type, one command
per body, at most 20 KB; each WebCallControl command changes call state or is refused with the
status a phone would give. Poly reports refusals over HTTP as 4xxx codes; over SIP the phone can
only answer a SIP status. No manual says which: `POLY_TO_SIP` is this simulator's own
convention, not a Poly fact (docs/profiles.md, "The simulator"); the Poly code travels in a
Warning header (RFC 3261 §20.43).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

SimCallState = Literal["ringing", "connected", "held"]
MAX_BODY_BYTES = 20 * 1024

# Poly status code -> the SIP status the simulator answers with. The simulator's convention:
# manual 002 documents the 4xxx codes for HTTP answers only and no SIP status for a NOTIFY.
POLY_TO_SIP: dict[int, tuple[int, str]] = {
    2000: (200, "OK"),
    4000: (400, "Invalid Input Parameters"),
    4001: (403, "Device Busy"),
    4003: (403, "Operation Not Allowed"),
    4004: (501, "Operation Not Supported"),
    4007: (404, "Call Does Not Exist"),
    4009: (413, "Input Size Limit Exceeded"),
}


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """The phone's answer to one NOTIFY."""

    status: int
    reason: str
    poly_code: int | None = None

    @classmethod
    def poly(cls, code: int) -> Verdict:
        status, reason = POLY_TO_SIP[code]
        return cls(status=status, reason=reason, poly_code=code)


OK = Verdict.poly(2000)


class Refused(Exception):
    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict


@dataclass
class SimCall:
    call_id: str
    remote: str
    state: SimCallState
    dtmf: list[str] = field(default_factory=list)
    conference: int | None = None
    silenced: bool = False  # ignoreCall: the ringer stops, the call stays (manual 002)


@dataclass(frozen=True, kw_only=True)
class Received:
    """One NOTIFY the phone took in, and what it answered (for tests to inspect)."""

    event: str | None
    content_type: str | None
    body: bytes
    command_uri: str | None
    data: dict[str, Any] | None
    status: int


def call_handle(call_id: str) -> str:
    """The phone's own handle for a call (8 hex digits, as callStatus shows), stable per Call-ID."""
    return hashlib.sha1(call_id.encode()).hexdigest()[:8]


def new_call_id(host: str) -> str:
    """A Call-ID shaped like a Poly phone's: three hex groups at the phone's address."""
    return f"{secrets.token_hex(4)}-{secrets.token_hex(4)}-{secrets.token_hex(4)}@{host}"


class SimPhone:
    """The state of one simulated phone: its calls, mute, and every NOTIFY it received."""

    def __init__(self, extension: str, *, host: str = "127.0.0.1") -> None:
        self.extension = extension
        self.host = host
        self.calls: dict[str, SimCall] = {}
        self.muted = False
        self.received: list[Received] = []
        self.transfers: list[tuple[str, str]] = []  # (call_id, destination)
        self._conferences = 0
        self._commands: dict[str, Callable[[dict[str, Any]], None]] = {
            "/api/v1/callctrl/answerCall": self._answer,
            "/api/v1/callctrl/rejectCall": self._reject,
            "/api/v1/callctrl/ignoreCall": self._ignore,
            "/api/v1/callctrl/endCall": self._end,
            "/api/v1/callctrl/holdCall": self._hold,
            "/api/v1/callctrl/resumeCall": self._resume,
            "/api/v1/callctrl/transferCall": self._transfer,
            "/api/v1/callctrl/warmTransfer": self._warm_transfer,
            "/api/v1/callctrl/sendDTMF": self._dtmf,
            "/api/v1/callctrl/mute": self._mute,
            "/api/v1/callctrl/joinCalls": self._join,
            "/api/v1/callctrl/dial": self._dial,
        }

    # -- setting the scene -------------------------------------------------------------------

    def add_call(
        self,
        *,
        state: SimCallState = "connected",
        remote: str = "sip:2000@127.0.0.1",
        call_id: str | None = None,
    ) -> SimCall:
        call = SimCall(call_id=call_id or new_call_id(self.host), remote=remote, state=state)
        self.calls[call.call_id] = call
        return call

    # -- one NOTIFY ---------------------------------------------------------------------------

    def handle_notify(self, *, event: str | None, content_type: str | None, body: bytes) -> Verdict:
        """Check a NOTIFY as a Poly phone does, then carry out its command."""
        command_uri: str | None = None
        data: dict[str, Any] | None = None
        try:
            command_uri, data = _parse(event, content_type, body)
            verdict = self.run(command_uri, data)
        except Refused as refused:
            verdict = refused.verdict
        self.received.append(
            Received(
                event=event,
                content_type=content_type,
                body=body,
                command_uri=command_uri,
                data=data,
                status=verdict.status,
            )
        )
        return verdict

    def run(self, command_uri: str, data: dict[str, Any]) -> Verdict:
        """Carry out one call-control command, whichever transport brought it."""
        handler = self._commands.get(command_uri)
        if handler is None:
            return Verdict.poly(4004)
        try:
            handler(data)
        except Refused as refused:
            return refused.verdict
        return OK

    # -- commands ---------------------------------------------------------------------------

    def _find(self, data: dict[str, Any], key: str = "Ref") -> SimCall:
        ref = data.get(key)
        if not isinstance(ref, str) or not ref:
            raise Refused(Verdict.poly(4000))
        # Manual 002: Ref is the phone's call handle or, from UCS 6.4.2 / PVOS 8.0, the Call-ID.
        call = self.calls.get(ref) or next(
            (c for c in self.calls.values() if call_handle(c.call_id) == ref), None
        )
        if call is None:
            raise Refused(Verdict.poly(4007))
        return call

    def _pick(self, data: dict[str, Any], state: SimCallState) -> SimCall:
        """Ref when given, else the first call in `state` (manual: input is optional)."""
        if "Ref" in data:
            return self._find(data)
        for call in self.calls.values():
            if call.state == state:
                return call
        raise Refused(Verdict.poly(4007))

    def _require(self, call: SimCall, *states: SimCallState) -> None:
        if call.state not in states:
            raise Refused(Verdict.poly(4003))

    def _hold_others(self, keep: SimCall) -> None:
        # One active call at a time: making one active holds the others.
        for call in self.calls.values():
            if call is not keep and call.state == "connected":
                call.state = "held"

    def _answer(self, data: dict[str, Any]) -> None:
        call = self._pick(data, "ringing")
        self._require(call, "ringing")
        self._hold_others(call)
        call.state = "connected"

    def _reject(self, data: dict[str, Any]) -> None:
        call = self._pick(data, "ringing")
        self._require(call, "ringing")
        del self.calls[call.call_id]

    def _ignore(self, data: dict[str, Any]) -> None:
        """Manual 002, IgnoreCall: stop ringing on this phone; unlike reject, the call goes on
        (still ringing elsewhere, or to voicemail by the PBX's rules)."""
        call = self._pick(data, "ringing")
        self._require(call, "ringing")
        call.silenced = True

    def _end(self, data: dict[str, Any]) -> None:
        call = self._find(data)
        del self.calls[call.call_id]

    def _hold(self, data: dict[str, Any]) -> None:
        call = self._pick(data, "connected")
        self._require(call, "connected")
        call.state = "held"

    def _resume(self, data: dict[str, Any]) -> None:
        call = self._find(data)
        self._require(call, "held")
        self._hold_others(call)
        call.state = "connected"

    def _transfer(self, data: dict[str, Any]) -> None:
        call = self._find(data)
        dest = data.get("TransferDest")
        if not isinstance(dest, str) or not dest:
            raise Refused(Verdict.poly(4000))
        self._require(call, "connected", "held")
        self.transfers.append((call.call_id, dest))
        del self.calls[call.call_id]

    def _warm_transfer(self, data: dict[str, Any]) -> None:
        a = self._find(data, "Ref-A")
        b = self._find(data, "Ref-B")
        if a is b:
            raise Refused(Verdict.poly(4000))
        self.transfers.append((a.call_id, b.remote))
        del self.calls[a.call_id]
        del self.calls[b.call_id]

    def _active(self) -> SimCall:
        for call in self.calls.values():
            if call.state == "connected":
                return call
        raise Refused(Verdict.poly(4007))

    def _dtmf(self, data: dict[str, Any]) -> None:
        digits = data.get("Digits")
        if not isinstance(digits, str) or not digits:
            raise Refused(Verdict.poly(4000))
        self._active().dtmf.append(digits)

    def _mute(self, data: dict[str, Any]) -> None:
        state = data.get("state")
        if state not in ("0", "1"):
            raise Refused(Verdict.poly(4000))
        self._active()
        wanted = state == "1"
        if wanted == self.muted:
            raise Refused(Verdict.poly(4003))  # manual: no change in mute state is refused
        self.muted = wanted

    def _join(self, data: dict[str, Any]) -> None:
        active = self._active()
        held = [c for c in self.calls.values() if c.state == "held"]
        if not held:
            # Manual 002, JoinCalls: codes 2000, 4000, 4007 ("call doesn't exist"); no 4003.
            raise Refused(Verdict.poly(4007))
        self._conferences += 1
        for call in (active, *held):
            call.state = "connected"
            call.conference = self._conferences

    def _dial(self, data: dict[str, Any]) -> None:
        dest = data.get("Dest")
        if not isinstance(dest, str) or not dest:
            raise Refused(Verdict.poly(4000))
        call = self.add_call(state="connected", remote=dest)
        self._hold_others(call)


def _parse(event: str | None, content_type: str | None, body: bytes) -> tuple[str, dict[str, Any]]:
    if (event or "").strip().lower() != "action-uri":
        raise Refused(Verdict(status=489, reason="Bad Event"))  # RFC 6665 §8.2.1
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        raise Refused(Verdict(status=415, reason="Unsupported Media Type"))
    if len(body) > MAX_BODY_BYTES:
        raise Refused(Verdict.poly(4009))
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refused(Verdict(status=400, reason="Body Is Not JSON")) from exc
    # Exactly one command: an object with command-URI and (optional) data, nothing else.
    if not isinstance(document, dict) or set(document) - {"command-URI", "data"}:
        raise Refused(Verdict(status=400, reason="One Command Per Body"))
    command_uri = document.get("command-URI")
    data = document.get("data", {})
    if not isinstance(command_uri, str) or not isinstance(data, dict):
        raise Refused(Verdict(status=400, reason="One Command Per Body"))
    return command_uri, data
