"""A simulated phone's REST API over HTTP (manual 002), around the same `SimPhone` as its SIP side.

What it copies from a Poly phone: user `Polycom`; Basic and/or Digest (MD5, SHA-256, qop=auth)
as configured; PVOS session tokens (SHA-256 digest only, at most 10, a lifetime, cookie
`session`); one request at a time (a second gets 403 / 4001); 413 / 4009 over 20 KB; 4010 while
the admin password is the default; Poly status codes in every JSON answer; data for the query
commands shaped as the manuals show. The digest check here is the *server* side, which aiohttp
does not provide; sipbridge's client uses aiohttp's own middleware, and the tests also check it
against lighttpd.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from sipbridge.sim.phone import MAX_BODY_BYTES, SimCall, SimPhone, call_handle

DigestAlgorithm = Literal["MD5", "SHA-256"]
SimAuth = Literal["basic", "MD5", "SHA-256"]
DEFAULT_PASSWORD = "456"  # a Poly phone's factory admin password
REALM = "PolycomSPIP"

_HASH: dict[str, Callable[[bytes], Any]] = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
# HTTP status a Poly failure code travels with (manuals give only the code).
_HTTP_OF_CODE = {4001: 403, 4009: 413, 4010: 403, 4403: 403, 4400: 400, 5000: 500, 5500: 500}


@dataclass
class SimSession:
    session_id: str
    created: float
    expires: float


@dataclass
class SimHttpLog:
    """What the phone saw, for tests: (method, path, auth scheme used, HTTP status)."""

    requests: list[tuple[str, str, str, int]] = field(default_factory=list)
    max_live_sessions: int = 0
    sessions_created: int = 0
    sessions_deleted: int = 0


class SimHttpPhone:
    """The phone's web server: auth, limits and the REST paths."""

    def __init__(
        self,
        phone: SimPhone,
        *,
        user: str = "Polycom",
        password: str = "S3cret-Admin-1",
        auth: tuple[SimAuth, ...] = ("SHA-256", "MD5"),
        sessions: bool = False,
        max_sessions: int = 10,
        session_lifetime: float = 1500,
        processing_time: float = 0.0,
        model: str = "Edge E450",
        firmware: str = "8.3.1.0614",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.phone = phone
        self.user = user
        self.password = password
        self.auth = auth
        self.sessions_enabled = sessions
        self.max_sessions = max_sessions
        self.session_lifetime = session_lifetime
        self.processing_time = processing_time
        self.model = model
        self.firmware = firmware
        self.clock = clock
        self.log = SimHttpLog()
        self.sessions: dict[str, SimSession] = {}
        self.config: dict[str, str] = {"apps.restapi.enabled": "1", "voIpProt.SIP.enable": "1"}
        self.transfer_type = "Consultative"
        self._nonces: set[str] = set()
        self._busy = False

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._entry)
        return app

    # -- the pipeline ----------------------------------------------------------------------------

    async def _entry(self, request: web.Request) -> web.StreamResponse:
        scheme, response = await self._handle(request)
        self.log.requests.append((request.method, request.path, scheme, response.status))
        return response

    async def _handle(self, request: web.Request) -> tuple[str, web.StreamResponse]:
        scheme = self._authenticate(request)
        if scheme is None:
            return "none", self._challenge()
        if self._busy:  # manual 002: no parallel processing
            return scheme, _poly(4001)
        self._busy = True
        try:
            if self.processing_time:
                await asyncio.sleep(self.processing_time)
            return scheme, await self._serve(request, scheme)
        finally:
            self._busy = False

    async def _serve(self, request: web.Request, scheme: str) -> web.StreamResponse:
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return _poly(4009)
        body = await request.read()
        if len(body) > MAX_BODY_BYTES:
            return _poly(4009)
        if self.password == DEFAULT_PASSWORD:
            return _poly(4010)
        if request.method == "POST" and body and request.content_type != "application/json":
            return web.json_response({"Status": "4400"}, status=400)
        data: Any = {}
        if body:
            try:
                data = json.loads(body).get("data", {})
            except (ValueError, AttributeError):
                return _poly(4000)
        route = _ROUTES.get((request.method, request.path))
        if route is None:
            if request.path.startswith("/api/v1/callctrl/") and request.method == "POST":
                return self._call_control(request.path, data)
            return web.json_response({"Status": "4004"}, status=404)
        return await route(self, request, data, scheme)

    # -- auth ------------------------------------------------------------------------------------

    def _authenticate(self, request: web.Request) -> str | None:
        """The scheme that authenticated the request, or None (then 401 with challenges)."""
        cookie = request.cookies.get("session")
        if cookie is not None and self._session_alive(cookie):
            return "session"
        header = request.headers.get("Authorization", "")
        kind, _, rest = header.partition(" ")
        if kind.lower() == "basic" and "basic" in self.auth:
            try:
                user, _, password = base64.b64decode(rest).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            ok = secrets.compare_digest(f"{user}:{password}", f"{self.user}:{self.password}")
            return "basic" if ok else None
        if kind.lower() == "digest":
            return self._check_digest(request, rest)
        return None

    def _check_digest(self, request: web.Request, header: str) -> str | None:
        fields = _parse_auth(header)
        algorithm = fields.get("algorithm", "MD5").upper()
        if algorithm not in self.auth or algorithm not in _HASH:
            return None
        if fields.get("nonce") not in self._nonces or fields.get("username") != self.user:
            return None
        if fields.get("uri") != request.path_qs:
            return None

        def h(text: str) -> str:
            return str(_HASH[algorithm](text.encode()).hexdigest())

        ha1 = h(f"{self.user}:{fields.get('realm', '')}:{self.password}")
        ha2 = h(f"{request.method}:{fields['uri']}")
        if fields.get("qop") == "auth":
            parts = (fields["nonce"], fields.get("nc", ""), fields.get("cnonce", ""), "auth", ha2)
            expected = h(f"{ha1}:{':'.join(parts)}")
        else:
            expected = h(f"{ha1}:{fields['nonce']}:{ha2}")
        if not secrets.compare_digest(expected, fields.get("response", "")):
            return None
        return f"digest-{algorithm}"

    def _challenge(self) -> web.Response:
        response = web.json_response({"Status": "4403"}, status=401)
        for method in self.auth:
            if method == "basic":
                response.headers.add("WWW-Authenticate", f'Basic realm="{REALM}"')
                continue
            nonce = secrets.token_hex(16)
            if len(self._nonces) > 1000:  # bounded: old nonces simply stop working
                self._nonces.clear()
            self._nonces.add(nonce)
            response.headers.add(
                "WWW-Authenticate",
                f'Digest realm="{REALM}", nonce="{nonce}", algorithm={method}, qop="auth"',
            )
        return response

    def _session_alive(self, session_id: str) -> bool:
        session = self.sessions.get(session_id)
        if session is None:
            return False
        if self.clock() >= session.expires:
            del self.sessions[session_id]
            return False
        return True

    # -- sessions (manual 002, Management.SessionCreate / List / Delete) ---------------------------

    async def _session_create(self, _: web.Request, __: Any, scheme: str) -> web.Response:
        if not self.sessions_enabled:
            return web.json_response({"Status": "4004"}, status=404)
        if scheme != "digest-SHA-256":  # sessions need SHA-256 digest
            return _poly(4403)
        for session_id in list(self.sessions):
            self._session_alive(session_id)  # drop the expired
        if len(self.sessions) >= self.max_sessions:
            return _poly(4403)
        now = self.clock()
        session = SimSession(
            session_id=secrets.token_urlsafe(24), created=now, expires=now + self.session_lifetime
        )
        self.sessions[session.session_id] = session
        self.log.sessions_created += 1
        self.log.max_live_sessions = max(self.log.max_live_sessions, len(self.sessions))
        response = _ok({"sessionId": session.session_id, "authLevel": "admin"})
        response.set_cookie(
            "session",
            session.session_id,
            path="/",
            max_age=int(self.session_lifetime),
            httponly=True,
            secure=True,  # manual 002, SessionCreate: "Path=/; Secure; HttpOnly; Max-Age=1500"
        )
        return response

    async def _session_list(self, _: web.Request, __: Any, ___: str) -> web.Response:
        now = self.clock()
        listed = [
            {
                "sessionId": s.session_id,
                "remainingSeconds": str(int(s.expires - now)),
                "createdSecondsAgo": str(int(now - s.created)),
                "authLevel": "admin",
            }
            for s in self.sessions.values()
        ]
        return _ok({"Sessions": listed})

    async def _session_delete(self, _: web.Request, data: Any, __: str) -> web.Response:
        if not isinstance(data, list):
            return _poly(4000)
        deleted = [s for s in data if self.sessions.pop(s, None) is not None]
        self.log.sessions_deleted += len(deleted)
        result: dict[str, Any] = {"sessionsDeleted": deleted}
        missing = [s for s in data if s not in deleted]
        if missing:
            result["sessionsNotFound"] = missing
        return _ok(result)

    # -- call control and queries --------------------------------------------------------------

    def _call_control(self, path: str, data: Any) -> web.Response:
        if path.endswith("/warmTransfer"):  # manual 002: SIP only
            return _poly(4004)
        if not isinstance(data, dict):
            return _poly(4000)
        verdict = self.phone.run(path, data)
        return _poly(verdict.poly_code or 5000)

    def _call_status(self, call: SimCall, sequence: int) -> dict[str, str]:
        return {
            "CallHandle": _handle(call),
            "Type": "Outgoing" if call.remote.startswith("sip:") else "Incoming",
            "Protocol": "SIP",
            "CallState": {"ringing": "Offering", "connected": "Connected", "held": "Hold"}[
                call.state
            ],
            "LineID": "1",
            "CallSequence": str(sequence),
            "RemotePartyName": call.remote.split(":", 1)[-1].split("@", 1)[0],
            "RemotePartyNumber": call.remote,
            "Ringing": "1" if call.state == "ringing" and not call.silenced else "0",
            "Muted": "1" if self.phone.muted else "0",
            "UIAppearanceIndex": f"{sequence}*" if call.state == "connected" else str(sequence),
            "StartTime": "2026-01-05T09:30:00",
            "DurationSeconds": "42",
        }

    async def _call_status_v2(self, request: web.Request, _: Any, __: str) -> web.Response:
        query = request.query
        handle, line, sequence = query.get("handle"), query.get("line"), query.get("sequence")
        if (handle and (line or sequence)) or (sequence and not line):
            return _poly(4000)  # handle | line | line+sequence only
        calls = [self._call_status(c, n) for n, c in enumerate(self.phone.calls.values(), 1)]
        if handle:
            calls = [c for c in calls if c["CallHandle"] == handle]
            if not calls:
                return _poly(4007)
        if line:
            calls = [c for c in calls if c["LineID"] == line]
        if sequence:
            calls = [c for c in calls if c["CallSequence"] == sequence]
        return _ok(calls)

    async def _call_status_v1(self, _: web.Request, __: Any, ___: str) -> web.Response:
        if not self.phone.calls:
            return _poly(4007)
        call = next(iter(self.phone.calls.values()))
        status = self._call_status(call, 1)
        status["DurationInSeconds"] = status.pop("DurationSeconds")
        return _ok(status)

    async def _sip_status(self, _: web.Request, __: Any, ___: str) -> web.Response:
        calls = [
            {"CallState": "Hold" if c.state == "held" else "Connected", "CallID": c.call_id}
            for c in self.phone.calls.values()
        ]
        user = {
            "Name": self.phone.extension,
            "LineNumber": "1",
            "TotalEvents": "1",
            "Events": [{"Type": "Register", "RegistrationState": "Registered", "Expires": "3600"}],
            "TotalCalls": str(len(calls)),
            "Calls": calls,
        }
        return _ok({"User": [user], "TotalUser": "1"})

    async def _device_info_v2(self, _: web.Request, __: Any, ___: str) -> web.Response:
        return _ok(
            {
                "ModelNumber": self.model,
                "DeviceVendor": "Polycom",
                "DeviceType": "HardwareEndpoint",
                "MACAddress": "64167f9f4c90",
                "Firmware": {
                    "Application": self.firmware,
                    "Updater": "8.3.0.0410",
                    "BootBlock": "3.0.6.0001",
                },
                "IPAddress": self.phone.host,
                "IPStack": "IPv4 Only",
                "PreferredNetwork": "IPv4",
                "UpTime": {"Days": "0", "Hours": "3", "Minutes": "12", "Seconds": "9"},
                "AppState": "AppStateCall" if self.phone.calls else "AppStateIdle",
                "ReadyToUse": "True",
                "SerialNumber": "64167F9F4C90",
                "SystemName": f"Poly {self.model}",
            }
        )

    async def _device_info_v1(self, _: web.Request, __: Any, ___: str) -> web.Response:
        return _ok(
            {
                "ModelNumber": self.model,
                "FirmwareRelease": self.firmware,
                "DeviceType": "HardwareEndPoint",
                "DeviceVendor": "Polycom",
                "UpTimeSinceLastReboot": "0 Day 3:12:09",
                "IPV4Address": self.phone.host,
                "MACAddress": "64167f9f4c90",
            }
        )

    async def _network_info(self, _: web.Request, __: Any, ___: str) -> web.Response:
        return _ok(
            {
                "IPV4Address": self.phone.host,
                "SubnetMask": "255.0.0.0",
                "DefaultGateway": "127.0.0.1",
                "DHCP": "enabled",
                "DNSServer": "127.0.0.53",
                "DNSDomain": "example.net",
                "LANSpeed": "1000MB",
                "LANPortStatus": "active",
                "VLANID": "",
                "SNTPAddress": "pool.ntp.org",
                "ProvServerAddress": "https://prov.example.net",
                "ProvServerType": "HTTPS",
                "LLDP": "enabled",
            }
        )

    async def _line_info_v2(self, request: web.Request, _: Any, __: str) -> web.Response:
        line = request.query.get("line", "1")
        if line != "1":
            return _poly(4005)
        return _ok(
            [
                {
                    "ID": "1",
                    "Label": self.phone.extension,
                    "Username": self.phone.extension,
                    "Assigned": "True",
                    "RegistrationStatus": "Registered",
                    "Type": "Private",
                    "Active": "True" if self.phone.calls else "False",
                    "DoNotDisturb": "False",
                    "CallAppearances": [_handle(c) for c in self.phone.calls.values()],
                    "CallServers": [
                        {
                            "ID": "1",
                            "Address": "127.0.0.1",
                            "RegistrationStatus": "Registered",
                            "Port": "5060",
                            "Expires": "3600",
                            "Transport": "UdpOnly",
                            "Working": "True",
                        }
                    ],
                }
            ]
        )

    async def _poll_for_status(self, _: web.Request, __: Any, ___: str) -> web.Response:
        if self.phone.calls:
            return _ok({"State": "Active", "StateData": "00:00:42"})
        return _ok({"State": "Idle", "StateData": "2026-01-05T09:30:00"})

    async def _get_config(self, _: web.Request, data: Any, __: str) -> web.Response:
        if not isinstance(data, list) or not data:
            return _poly(4000)
        found = {
            name: {
                "value": self.config.get(name, ""),
                "source": "LOCAL" if name in self.config else "DEFAULT",
            }
            for name in data
        }
        return _ok(found)

    async def _set_config(self, _: web.Request, data: Any, __: str) -> web.Response:
        if not isinstance(data, dict) or not data:
            return _poly(4000)
        self.config.update({str(k): str(v) for k, v in data.items()})
        return _poly(2000)

    async def _get_transfer_type(self, _: web.Request, __: Any, ___: str) -> web.Response:
        return _ok({"Type": self.transfer_type})

    async def _set_transfer_type(self, _: web.Request, data: Any, __: str) -> web.Response:
        if not isinstance(data, dict) or data.get("Type") not in ("Consultative", "Blind", "Safe"):
            return _poly(4000)
        self.transfer_type = data["Type"]
        return _poly(2000)

    async def _call_logs(self, _: web.Request, __: Any, ___: str) -> web.Response:
        entry = {
            "LineNumber": "1",
            "StartTime": "2026-01-05T09:30:00",
            "RemotePartyName": "Reception",
            "RemotePartyNumber": "2000",
            "Duration": "PT1M2S",
        }
        return _ok({"missed": [], "received": [entry], "placed": []})

    async def _power_status(self, _: web.Request, __: Any, ___: str) -> web.Response:
        state = "PowerInCall" if self.phone.calls else "PowerOn"
        return web.json_response({"CurrentState": state, "Status": "2000"})

    async def _accepted(self, _: web.Request, __: Any, ___: str) -> web.Response:
        return _poly(2000)


Route = Callable[[SimHttpPhone, web.Request, Any, str], Awaitable[web.StreamResponse]]

_ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/api/v1/mgmt/session/create"): SimHttpPhone._session_create,
    ("GET", "/api/v1/mgmt/session/get"): SimHttpPhone._session_list,
    ("GET", "/api/v1/mgmt/session/delete"): SimHttpPhone._session_delete,
    ("GET", "/api/v1/webCallControl/callStatus"): SimHttpPhone._call_status_v1,
    ("GET", "/api/v2/webCallControl/callStatus"): SimHttpPhone._call_status_v2,
    ("GET", "/api/v1/webCallControl/sipStatus"): SimHttpPhone._sip_status,
    # GET in manuals 000 / 001 (UCS 5.8, 6.4.0), POST in 002 (PVOS): the simulator takes both.
    ("POST", "/api/v1/webCallControl/sipStatus"): SimHttpPhone._sip_status,
    ("GET", "/api/v1/mgmt/device/info"): SimHttpPhone._device_info_v1,
    ("GET", "/api/v2/mgmt/device/info"): SimHttpPhone._device_info_v2,
    ("GET", "/api/v1/mgmt/network/info"): SimHttpPhone._network_info,
    ("GET", "/api/v2/mgmt/lineInfo"): SimHttpPhone._line_info_v2,
    ("GET", "/api/v1/mgmt/pollForStatus"): SimHttpPhone._poll_for_status,
    ("GET", "/api/v1/mgmt/powerStatus"): SimHttpPhone._power_status,
    ("GET", "/api/v1/mgmt/callLogs"): SimHttpPhone._call_logs,
    ("GET", "/api/v1/mgmt/transferType/get"): SimHttpPhone._get_transfer_type,
    ("POST", "/api/v1/mgmt/transferType/set"): SimHttpPhone._set_transfer_type,
    ("POST", "/api/v1/mgmt/config/get"): SimHttpPhone._get_config,
    ("POST", "/api/v1/mgmt/config/set"): SimHttpPhone._set_config,
    ("POST", "/api/v1/mgmt/safeRestart"): SimHttpPhone._accepted,
    ("POST", "/api/v1/mgmt/safeReboot"): SimHttpPhone._accepted,
}


def _handle(call: SimCall) -> str:
    return call_handle(call.call_id)


def _ok(data: Any) -> web.Response:
    return web.json_response({"Status": "2000", "data": data})


def _poly(code: int) -> web.Response:
    status = 200 if code == 2000 else _HTTP_OF_CODE.get(code, 400)
    return web.json_response({"Status": str(code)}, status=status)


def _parse_auth(header: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in _split_commas(header):
        key, _, value = part.strip().partition("=")
        fields[key.strip().lower()] = value.strip().strip('"')
    return fields


def _split_commas(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


class SimHttpServer:
    """Serve a `SimHttpPhone` on 127.0.0.1 (port 0: any free one)."""

    def __init__(self, phone: SimHttpPhone, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.phone = phone
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(self.phone.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> SimHttpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
