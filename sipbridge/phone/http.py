"""The phone's own REST API as a second transport: an aiohttp client, and the lane it rides.

Auth (manual 002, "REST API authentication and access control methods"):

* basic   -- RFC 7617 on every request (the only method before PVOS 8.3 / 9.2, and on UCS);
  unless the operator pinned it, only after the phone's own 401 offered Basic and no Digest,
  so a password goes out in clear only to a phone that has nothing better;
* digest  -- aiohttp's `DigestAuthMiddleware` (RFC 7616), MD5 or SHA-256, `qop=auth`/`auth-int`;
* session -- PVOS session tokens: opened once with digest (the phone needs SHA-256 for them),
  reused as the `session` cookie, reopened when the phone says 401 or the lifetime ends,
  deleted on shutdown. One session per phone at a time, so never more than the phone's 10.

aiohttp's middleware answers the *first* `WWW-Authenticate` challenge. A phone with both MD5 and
SHA-256 enabled offers both; if it lists MD5 first, digest requests use MD5 and a session cannot
be opened -- sipbridge then falls back to per-request digest for a while instead of hand-writing
a challenge picker (disable MD5 on the phone, `httpd.rest.auth.digest.md5.enabled=0`, to get
sessions). No digest arithmetic is written here.

An HTTP command is an `HttpExchange` and its answer an `HttpAnswer`; the command path sends it in
the same per-phone lane as a NOTIFY (`sipbridge.commands.lanes`), so one phone never has a REST
call and a NOTIFY in flight at once.

Credentials go only to hosts inside `phone_networks`: an IP literal is checked before the
request, a name by the connector's resolver (`NetworksResolver`) before it connects.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.abc
import yarl
from aiohttp import ClientSession, DigestAuthMiddleware
from pydantic import SecretStr

from sipbridge.errors import ContactNotAllowed, PhoneTimeout, PhoneUnreachable
from sipbridge.phone.profiles import AuthMethod
from sipbridge.sip.networks import PhoneNetworks

log = logging.getLogger(__name__)

SESSION_CREATE = "/api/v1/mgmt/session/create"
SESSION_DELETE = "/api/v1/mgmt/session/delete"
SESSION_COOKIE = "session"
MAX_ANSWER_BYTES = 4 * 1024 * 1024  # a screenshot is the largest thing a phone sends back
_RENEW_MARGIN = 30.0  # reopen a session this long before the phone would drop it
_SESSION_RETRY_AFTER = 60.0  # after a failed session create, plain digest for this long


@dataclass(frozen=True, kw_only=True)
class PhoneEndpoint:
    """Where and as whom to reach one phone's REST API."""

    phone_id: str
    base_url: str  # scheme://host[:port], no path
    user: str
    password: SecretStr
    auth: AuthMethod
    session_lifetime: float = 1500.0
    # `auth` chosen by the operator (the credentials file), not guessed from the profile: a
    # pinned "basic" sends Basic at once; a guessed one only once the phone has asked for it.
    auth_pinned: bool = False


@dataclass(frozen=True, kw_only=True)
class HttpExchange:
    """One REST call to a phone: `url` is the full URL, `method` GET or POST."""

    url: str
    method: str
    endpoint: PhoneEndpoint
    body: bytes = b""
    content_type: str = "application/json"
    query: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class HttpAnswer:
    """The phone's HTTP answer: its status line and body, and what auth needs of it."""

    status: int
    reason: str
    body: bytes = b""
    content_type: str = ""
    challenges: tuple[str, ...] = ()  # WWW-Authenticate values of a 401
    session_cookie: str | None = None  # Set-Cookie: session=...
    session_max_age: float | None = None


@dataclass
class _Session:
    token: str
    session_id: str
    renew_at: float


@dataclass
class _Phone:
    """What the client keeps per phone: its digest state and its session."""

    endpoint: PhoneEndpoint
    digest: DigestAuthMiddleware
    session: _Session | None = None
    no_session_until: float = 0.0
    basic_asked: bool = False  # the phone's 401 offered Basic and no Digest
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class OutsideNetworksError(OSError):
    """A name the phone's REST URL uses resolved only to addresses outside phone_networks."""


class NetworksResolver(aiohttp.abc.AbstractResolver):
    """aiohttp's resolver, keeping only addresses inside `phone_networks`: the phone's password
    never goes to a host outside them, whatever a name resolves to (aiohttp does not consult
    the resolver for IP literals; `PhoneHttpClient` checks those itself)."""

    def __init__(self, networks: PhoneNetworks, inner: aiohttp.abc.AbstractResolver) -> None:
        self._networks = networks
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = [r for r in found if self._networks.allows(r["host"])]
        if not allowed:
            addresses = ", ".join(r["host"] for r in found)
            raise OutsideNetworksError(f"{host} resolves to {addresses}, outside phone_networks")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def tls_context(*, verify: bool, ca_file: Path | None) -> ssl.SSLContext | bool:
    """Phones ship self-signed certificates; verification stays on unless switched off."""
    if not verify:
        return False
    if ca_file is not None:
        return ssl.create_default_context(cafile=str(ca_file))
    return True


class PhoneHttpClient:
    """Sends `HttpExchange`s with the endpoint's auth; translates aiohttp errors at the edge."""

    def __init__(
        self,
        *,
        timeout: float,
        tls: ssl.SSLContext | bool = True,
        networks: PhoneNetworks | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._networks = networks
        self._timeout = timeout
        self._tls = tls
        self._clock = clock
        self._http: ClientSession | None = None
        self._phones: dict[tuple[str, str, str, str], _Phone] = {}

    async def start(self) -> None:
        connector = None
        if self._networks is not None:
            resolver = NetworksResolver(self._networks, aiohttp.DefaultResolver())
            connector = aiohttp.TCPConnector(resolver=resolver)
        self._http = ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            cookie_jar=aiohttp.DummyCookieJar(),  # the session cookie is sent per phone, by hand
        )

    async def close(self) -> None:
        """Delete the sessions we opened (best effort), then close the connection pool."""
        for state in list(self._phones.values()):
            await self._forget_session(state, state.endpoint)
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def send(self, exchange: HttpExchange) -> HttpAnswer:
        """One command, session handling included, within `timeout` as a whole: it holds the
        phone's lane like a SIP transaction and must end within the same bound."""
        state = self._state(exchange.endpoint)
        try:
            async with asyncio.timeout(self._timeout):
                if exchange.endpoint.auth != "session":
                    return await self._request(exchange, state)
                async with state.lock:
                    return await self._with_session(exchange, state)
        except TimeoutError as exc:  # aiohttp's own total timeout, or ours
            raise PhoneTimeout(
                f"phone {exchange.endpoint.phone_id} did not answer its REST API within "
                f"{self._timeout:g} s",
                sent=True,
            ) from exc

    # -- auth --------------------------------------------------------------------------------

    def _state(self, endpoint: PhoneEndpoint) -> _Phone:
        # The password's digest is part of the key: new credentials get a fresh digest state.
        secret = hashlib.sha256(endpoint.password.get_secret_value().encode()).hexdigest()
        key = (endpoint.phone_id, endpoint.base_url, endpoint.user, secret)
        state = self._phones.get(key)
        if state is None:
            digest = DigestAuthMiddleware(endpoint.user, endpoint.password.get_secret_value())
            state = self._phones[key] = _Phone(endpoint=endpoint, digest=digest)
        return state

    async def _with_session(self, exchange: HttpExchange, state: _Phone) -> HttpAnswer:
        now = self._clock()
        if state.session is not None and now >= state.session.renew_at:
            await self._forget_session(state, exchange.endpoint)
        if state.session is None and now >= state.no_session_until:
            await self._open_session(exchange.endpoint, state)
        if state.session is None:
            return await self._request(exchange, state, force_digest=True)
        answer = await self._request(exchange, state, cookie=state.session.token)
        if answer.status != 401:
            return answer
        # The phone dropped the session (lifetime, reboot, someone deleted it): open another.
        state.session = None
        await self._open_session(exchange.endpoint, state)
        if state.session is None:
            return await self._request(exchange, state, force_digest=True)
        return await self._request(exchange, state, cookie=state.session.token)

    async def _open_session(self, endpoint: PhoneEndpoint, state: _Phone) -> None:
        create = _exchange(endpoint, "GET", SESSION_CREATE)
        answer = await self._request(create, state, force_digest=True)
        session = _session_from(answer, self._clock(), endpoint.session_lifetime)
        if session is None:
            state.no_session_until = self._clock() + _SESSION_RETRY_AFTER
            log.warning(
                "phone %s: no REST session (HTTP %d); using digest per request for %.0f s",
                endpoint.phone_id,
                answer.status,
                _SESSION_RETRY_AFTER,
            )
            return
        state.session = session
        log.info("phone %s: REST session opened", endpoint.phone_id)

    async def _forget_session(self, state: _Phone, endpoint: PhoneEndpoint) -> None:
        session, state.session = state.session, None
        if session is None:
            return
        delete = _exchange(
            endpoint,
            "GET",
            SESSION_DELETE,
            body=json.dumps({"data": [session.session_id]}).encode(),
        )
        try:
            answer = await self._request(delete, state, cookie=session.token)
        except PhoneUnreachable as exc:
            log.info("phone %s: session not deleted: %s", endpoint.phone_id, exc.detail)
            return
        log.info("phone %s: REST session deleted (HTTP %d)", endpoint.phone_id, answer.status)

    # -- the wire ----------------------------------------------------------------------------

    def _check_host(self, endpoint: PhoneEndpoint) -> None:
        """An IP literal outside phone_networks gets nothing, credentials least of all."""
        if self._networks is None:
            return
        why = self._networks.why_not_host(_url_host(endpoint.base_url))
        if why is not None:
            raise ContactNotAllowed(
                f"phone {endpoint.phone_id}: REST URL {endpoint.base_url}: {why}; nothing was sent"
            )

    async def _request(
        self,
        exchange: HttpExchange,
        state: _Phone,
        *,
        cookie: str | None = None,
        force_digest: bool = False,
    ) -> HttpAnswer:
        if self._http is None:
            raise PhoneUnreachable("the phone HTTP client is not running")
        endpoint = exchange.endpoint
        self._check_host(endpoint)
        headers = {"Accept": "application/json"}
        if exchange.body:
            headers["Content-Type"] = exchange.content_type
        basic = endpoint.auth == "basic" and not force_digest and cookie is None
        if basic and not (endpoint.auth_pinned or state.basic_asked):
            # The profile says Basic, but the password goes out in clear only if the phone asks
            # for it: ask with digest first (RFC 7235 §4.1: the challenge names the schemes).
            answer = await self._exchange(exchange, headers, (state.digest,))
            if answer.status != 401 or not _offers_only_basic(answer.challenges):
                return answer
            state.basic_asked = True
            log.info("phone %s offers only Basic auth: using it", endpoint.phone_id)
        middlewares: tuple[DigestAuthMiddleware, ...] = ()
        if cookie is not None:
            headers["Cookie"] = f"{SESSION_COOKIE}={cookie}"
        elif basic:
            headers["Authorization"] = aiohttp.encode_basic_auth(
                endpoint.user, endpoint.password.get_secret_value()
            )
        else:
            middlewares = (state.digest,)
        return await self._exchange(exchange, headers, middlewares)

    async def _exchange(
        self,
        exchange: HttpExchange,
        headers: dict[str, str],
        middlewares: tuple[DigestAuthMiddleware, ...],
    ) -> HttpAnswer:
        assert self._http is not None
        endpoint = exchange.endpoint
        try:
            async with self._http.request(
                exchange.method,
                exchange.url,
                params=exchange.query or None,
                data=exchange.body or None,
                headers=headers,
                middlewares=middlewares,
                ssl=self._tls,
                allow_redirects=False,
            ) as response:
                body = await response.content.read(MAX_ANSWER_BYTES)
                morsel = response.cookies.get(SESSION_COOKIE)
                max_age = morsel["max-age"] if morsel is not None else ""
                return HttpAnswer(
                    status=response.status,
                    reason=response.reason or "",
                    challenges=tuple(response.headers.getall("WWW-Authenticate", ())),
                    body=body,
                    content_type=response.content_type,
                    session_cookie=morsel.value if morsel is not None else None,
                    session_max_age=float(max_age) if max_age.isdigit() else None,
                )
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, OutsideNetworksError):
                raise ContactNotAllowed(
                    f"phone {endpoint.phone_id}: REST URL {endpoint.base_url}: {exc.os_error}; "
                    "nothing was sent"
                ) from exc
            raise PhoneUnreachable(
                f"cannot reach phone {endpoint.phone_id} at {endpoint.base_url}: {exc}"
            ) from exc
        except (aiohttp.ClientError, ssl.SSLError) as exc:
            raise PhoneUnreachable(
                f"cannot reach phone {endpoint.phone_id} at {endpoint.base_url}: {exc}"
            ) from exc


def _offers_only_basic(challenges: tuple[str, ...]) -> bool:
    schemes = {c.strip().split(" ", 1)[0].lower() for c in challenges if c.strip()}
    return "basic" in schemes and "digest" not in schemes


def _url_host(base_url: str) -> str:
    return yarl.URL(base_url).raw_host or ""


def _exchange(
    endpoint: PhoneEndpoint, method: str, path: str, *, body: bytes = b""
) -> HttpExchange:
    return HttpExchange(
        url=endpoint.base_url.rstrip("/") + path, method=method, body=body, endpoint=endpoint
    )


def _session_from(answer: HttpAnswer, now: float, lifetime: float) -> _Session | None:
    """The session a successful session/create answered with (cookie, else body sessionId)."""
    if answer.status != 200:
        return None
    try:
        document: Any = json.loads(answer.body)
    except ValueError:
        return None
    data = document.get("data") if isinstance(document, dict) else None
    session_id = data.get("sessionId") if isinstance(data, dict) else None
    if str(document.get("Status")) != "2000" or not isinstance(session_id, str):
        return None
    token = answer.session_cookie or session_id
    max_age = answer.session_max_age or lifetime
    renew_at = now + max(max_age - _RENEW_MARGIN, max_age / 2)
    return _Session(token=token, session_id=session_id, renew_at=renew_at)
