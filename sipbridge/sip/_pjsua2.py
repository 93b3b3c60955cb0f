"""The pjsua2 user agent: the only module in sipbridge that imports pjsua2.

Lifecycle (`_state`; a UA starts once and never again after it stopped):

    created --start()--> running --stop()--> stopped

One way to drive pjsip, as pjproject's own Python app does: one thread owns the Endpoint (the
thread that calls `start()`; the Endpoint has `threadCnt = 0` and no media), and the asyncio
loop running on that thread drives it. pjsip's sockets are watched with `loop.add_reader`, so a
reply is read by `libHandleEvents(0)` as soon as it arrives, and a timer polls for pjsip's own
timers (retransmissions, Timer F) and for TCP connections opened after start (1 ms while commands
are in flight, 10 ms when idle). Callbacks run on that thread and resolve futures directly: no
GIL hand-off, no pjsip lock contention (the pump thread this replaced cost more CPU and latency a
NOTIFY, docs/performance.md). A UA started outside a loop (a session-wide UA in tests) attaches
to the loop of its first `send`, and to the next loop when that one has gone.

Correlation: `SendRequestParam.userData` carries a SWIG object (a token); the callback hands back
its pointer. A token stays referenced until its callback has fired (or long after its transaction
must have ended), so no pointer can be reused while an answer for it may still arrive: a late
answer can never be mistaken for another command's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import glob
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pjsua2 as pj

from sipbridge.errors import StartupError
from sipbridge.sip.action_uri import OutgoingRequest, SipAnswer, next_hop_transport
from sipbridge.sip.uri import uri_host
from sipbridge.tls import SipTls

log = logging.getLogger(__name__)
pjsip_log = logging.getLogger("sipbridge.pjsip")

# Replies are lost at 200 in flight with the default 212 KB UDP buffer (PJSUA2_NOTES.md).
_SOCKET_BUFFER = 4 * 1024 * 1024
# pjsip's defaults for T1, T2 and T4 (RFC 3261 §17.1.1.1), in milliseconds.
_T1_MS, _T2_MS, _T4_MS = 500, 4000, 5000
# When driven by the event loop: how often pjsip's timers and unwatched sockets are polled.
_BUSY_POLL, _IDLE_POLL = 0.001, 0.01
# libHandleEvents(0) calls per poll at most, so a backlog of timers cannot stall the loop.
_MAX_POLLS = 256


@dataclass
class _Pending:
    token: object
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[SipAnswer] | None
    created: float = field(default_factory=time.monotonic)
    # Its answer comes on a socket the loop watches (our UDP port), not on a TCP connection
    # pjsip opened later, which only the tick reads.
    watched: bool = True
    # The caller reads the answer's headers (a SUBSCRIBE's Expires); a NOTIFY's status is enough.
    with_raw: bool = False


class _LogWriter(pj.LogWriter):  # type: ignore[misc]
    """Routes pjsip's log lines into Python logging instead of stdout."""

    def write(self, entry: pj.LogEntry) -> None:
        pjsip_log.debug("%s", entry.msg.rstrip())


class _Account(pj.Account):  # type: ignore[misc]
    def __init__(self, on_answer: Callable[[int, pj.OnSendRequestParam], None]) -> None:
        super().__init__()
        self._on_answer = on_answer

    def onSendRequest(self, prm: pj.OnSendRequestParam) -> None:
        # Exceptions raised here are printed and swallowed by SWIG: log them ourselves.
        try:
            self._on_answer(int(prm.userData), prm)
        except Exception:
            log.exception("onSendRequest failed")


def _attach_token(param: pj.SendRequestParam) -> pj.SipHeader:
    """A fresh object whose address identifies the request in onSendRequest (userData).

    SWIG disowns an object assigned to a Token (void *) member, so the C++ object behind it
    would never be deleted, a leak on every command (docs/performance.md). pjsua only hands
    the pointer back, so ownership is taken back at once and the token dies with the
    request's `_Pending` entry, after the callback.
    """
    token = pj.SipHeader()
    param.userData = token
    token.thisown = True
    return token


def _answer(prm: pj.OnSendRequestParam, *, with_raw: bool) -> SipAnswer:
    """The final answer pjsua reports; the whole message only if asked (a copy per answer) or
    if it is a refusal, whose headers (Retry-After, a challenge, Allow) the caller may need."""
    tsx_state = prm.e.body.tsxState
    tsx = tsx_state.tsx
    from_wire = tsx_state.type == pj.PJSIP_EVENT_RX_MSG
    status = int(tsx.statusCode)
    # Non-2xx answers carry what the caller needs: a challenge (sipbridge.sip.challenge),
    # Retry-After, Allow (sipbridge/commands/outcome.py); a 2xx is copied only when asked.
    wanted = with_raw or not 200 <= status < 300
    return SipAnswer(
        status=status,
        reason=str(tsx.statusText),
        from_wire=from_wire,
        raw=tsx_state.src.rdata.wholeMsg if from_wire and wanted else None,
        # pjsip ends a transaction its transport failed with a 503 of its own
        # (PJSIP_SC_TSX_TRANSPORT_ERROR); Timer F is a 408.
        transport_failed=not from_wire and status == 503,
    )


def _pjsip_c_api() -> ctypes.CDLL:
    """pjsip's C functions that pjsua2 does not wrap, from the extension module itself."""
    package_dir = os.path.dirname(pj.__file__)
    candidates = glob.glob(os.path.join(package_dir, "_pjsua2*.so"))
    if not candidates:
        raise StartupError("cannot find the pjsua2 extension module")
    return ctypes.CDLL(candidates[0])


def _quiet_pjlib() -> None:
    """pjlib logs to stdout from libCreate on, before EpConfig's log settings apply."""
    set_level = _pjsip_c_api().pj_log_set_level
    set_level.argtypes = [ctypes.c_int]
    set_level(0)


def _set_transaction_timeout(seconds: float) -> None:
    """Shorten Timer F (default 64*T1 = 32 s) through pjsip's C API; pjsua2 has no setting."""
    set_timers = _pjsip_c_api().pjsip_tsx_set_timers
    set_timers.argtypes = [ctypes.c_uint] * 4
    set_timers(_T1_MS, _T2_MS, _T4_MS, int(seconds * 1000))


class PjsuaSender:
    """A `NotifySender` on a real pjsua2 Endpoint, UDP and TCP on one port."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 5070,
        transaction_timeout: float = 4.0,
        contact_host: str | None = None,
        contact_user: str = "sipbridge",
        tls: SipTls | None = None,
    ) -> None:
        self._host = host
        self._tls = tls
        self._contact_host = contact_host or host
        self._port = port
        self._transaction_timeout = transaction_timeout
        self._contact_user = contact_user
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()
        self._state = "created"
        self._owner: int | None = None  # the thread that created the Endpoint
        self._account: _Account | None = None
        # Accounts by (outbound proxy, next-hop transport). pjsip routes by an account's route
        # set, never by a Route header added as a plain extra header; and an account bound to
        # one of our transports takes its Via address from it, where an unbound one probes the
        # route with a throwaway socket on every request (socket, connect, getsockname, close:
        # pjsip_tpmgr_find_local_addr2).
        self._accounts: dict[tuple[str | None, str | None], _Account] = {}
        self._transport_ids: dict[str, int] = {}
        self._endpoint: pj.Endpoint | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop driving pjsip now
        self._watched: list[int] = []
        self._header_vectors: dict[tuple[tuple[str, str], ...], pj.SipHeaderVector] = {}
        self._last_sweep = 0.0
        self._tick: asyncio.TimerHandle | None = None
        self._tls_port: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the transports on this thread, which owns the Endpoint from now on; driven by
        the running loop if there is one, else by the loop of the first `send`."""
        if self._state != "created":
            raise StartupError(f"cannot start a user agent that is {self._state}")
        try:
            self._create_endpoint()
        except BaseException as exc:
            self._destroy_endpoint()
            self._state = "stopped"
            if isinstance(exc, StartupError):
                raise
            raise StartupError(f"SIP user agent failed to start: {exc}") from exc
        self._owner = threading.get_ident()
        self._watched = _socket_fds(self._port)
        self._state = "running"
        with contextlib.suppress(RuntimeError):  # no loop yet: the first send brings one
            self._attach(asyncio.get_running_loop())
        log.info("SIP user agent on %s:%d (udp, tcp)", self._host, self.port)

    def stop(self) -> None:
        if self._state != "running":
            return
        self._state = "stopped"
        self._detach()
        self._destroy_endpoint()
        with self._lock:
            pending = list(self._pending.values())
            self._pending.clear()
        for entry in pending:
            self._resolve_entry(
                entry, SipAnswer(status=503, reason="Shutting down", from_wire=False)
            )

    @property
    def port(self) -> int:
        return self._port

    @property
    def local_contact(self) -> str:
        return f"sip:{self._contact_user}@{uri_host(self._contact_host)}:{self._port}"

    def _create_endpoint(self) -> None:
        if self._port == 0:
            self._port = _free_port(self._host)
        _set_transaction_timeout(self._transaction_timeout)
        _quiet_pjlib()
        endpoint = pj.Endpoint()
        self._endpoint = endpoint
        endpoint.libCreate()
        config = pj.EpConfig()
        config.uaConfig.threadCnt = 0
        config.uaConfig.mainThreadOnly = False
        config.medConfig.threadCnt = 0
        config.logConfig.level = 3 if pjsip_log.isEnabledFor(logging.DEBUG) else 1
        config.logConfig.consoleLevel = 0
        writer = _LogWriter()
        config.logConfig.writer = writer
        writer.__disown__()  # libDestroy deletes it (PJSUA2_NOTES.md)
        endpoint.libInit(config)
        endpoint.audDevManager().setNullDev()
        for kind in (pj.PJSIP_TRANSPORT_UDP, pj.PJSIP_TRANSPORT_TCP):
            transport = pj.TransportConfig()
            transport.boundAddress = self._host
            transport.port = self._port
            transport.sockOptParams = _buffer_options()
            try:
                transport_id = endpoint.transportCreate(kind, transport)
            except pj.Error as exc:
                raise StartupError(
                    f"cannot bind {self._host}:{self._port}: {exc.info()}"
                ) from exc
            # Bound to a wildcard address, the probe picks the right interface for each
            # destination, so accounts stay unbound; bound to one address, there is no choice.
            if not _is_wildcard(self._host):
                name = "udp" if kind == pj.PJSIP_TRANSPORT_UDP else "tcp"
                self._transport_ids[name] = int(transport_id)
        if self._tls is not None:
            self._create_tls_transport(endpoint, self._tls)
        endpoint.libStart()
        account_config = pj.AccountConfig()
        account_config.idUri = self.local_contact
        self._account = _Account(self._on_answer)
        self._account.create(account_config, True)
        self._accounts[(None, None)] = self._account

    def _create_tls_transport(self, endpoint: pj.Endpoint, tls: SipTls) -> None:
        """SIP over TLS (RFC 3261 §26.2, RFC 5630): the client side for `sips:` and
        `;transport=tls` phones, verifying their certificate and name by default (RFC 5922)."""
        transport = pj.TransportConfig()
        transport.boundAddress = self._host
        transport.port = tls.port
        config = transport.tlsConfig
        if tls.ca_file is not None:
            config.CaListFile = str(tls.ca_file)
        if tls.cert_file is not None and tls.key_file is not None:
            config.certFile = str(tls.cert_file)
            config.privKeyFile = str(tls.key_file)
        config.method = pj.PJSIP_TLSV1_2_METHOD
        config.proto = pj.PJ_SSL_SOCK_PROTO_TLS1_2  # the wheel's OpenSSL 1.0.2 has no 1.3
        config.verifyServer = tls.verify_peers
        try:
            transport_id = endpoint.transportCreate(pj.PJSIP_TRANSPORT_TLS, transport)
        except pj.Error as exc:
            raise StartupError(
                f"cannot bind TLS on {self._host}:{tls.port}: {exc.info()}"
            ) from exc
        self._tls_port = int(
            str(endpoint.transportGetInfo(transport_id).localName).rsplit(":", 1)[1]
        )
        if not _is_wildcard(self._host):
            self._transport_ids["tls"] = int(transport_id)
        log.info(
            "SIP user agent over TLS on %s:%d (verifying phones: %s)",
            self._host,
            self._tls_port,
            "yes" if tls.verify_peers else "NO",
        )

    @property
    def tls_port(self) -> int | None:
        """The bound TLS port (sip_tls_port 0 picks one), or None without TLS."""
        return self._tls_port

    # -- driven by the event loop ------------------------------------------------------------

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let `loop` drive pjsip: watch its sockets, start the tick."""
        self._detach()
        self._loop = loop
        for fd in self._watched:
            loop.add_reader(fd, self._poll, 1)
        self._tick = loop.call_later(_IDLE_POLL, self._on_tick)

    def _detach(self) -> None:
        loop, self._loop = self._loop, None
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        if loop is None or loop.is_closed():
            return
        for fd in self._watched:
            loop.remove_reader(fd)

    def _poll(self, passes: int = _MAX_POLLS) -> None:
        """Let pjsip read what is ready and run its expired timers, in at most `passes` passes.

        A readable watched socket needs one pass (`add_reader` asks for that): the loop's
        selector is level-triggered, so a packet left unread wakes it again on the next turn,
        and polling on until pjsip found nothing cost a second, empty pass (a timer scan and an
        epoll_wait) on every answer. The tick drains: one pass handles only a few expired timers
        (a handful), and undrained, finished transactions outlive Timer K and memory grows
        without end (`bench/run --soak`, docs/performance.md).
        """
        endpoint = self._endpoint
        if endpoint is None:
            return
        try:
            for _ in range(passes):
                if endpoint.libHandleEvents(0) <= 0:
                    break
        except pj.Error:
            log.exception("libHandleEvents failed")

    def _on_tick(self) -> None:
        self._poll()
        if self._loop is not None and self._state == "running":
            # The fast tick only while an answer may arrive on a socket the loop does not watch;
            # answers over UDP wake the loop themselves, and pjsip's timers (T1 = 500 ms) need
            # no finer tick. At one command in flight the 1 ms tick was a wake-up per command.
            with self._lock:
                busy = any(not entry.watched for entry in self._pending.values())
            interval = _BUSY_POLL if busy else _IDLE_POLL
            self._tick = self._loop.call_later(interval, self._on_tick)

    def _tick_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bring the next tick within _BUSY_POLL: an answer is due on an unwatched socket."""
        tick = self._tick
        if loop is not self._loop or tick is None or tick.when() - loop.time() <= _BUSY_POLL:
            return
        tick.cancel()
        self._tick = loop.call_later(_BUSY_POLL, self._on_tick)

    def _destroy_endpoint(self) -> None:
        endpoint, self._endpoint = self._endpoint, None
        self._account = None
        self._accounts.clear()
        if endpoint is None:
            return
        try:
            endpoint.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)
        except pj.Error:
            log.exception("libDestroy failed")

    # -- sending -----------------------------------------------------------------------------

    def _account_for(self, request: OutgoingRequest, transport: str) -> _Account:
        """The account for the request's outbound proxy and next-hop transport."""
        key = (request.proxy, transport if transport in self._transport_ids else None)
        account = self._accounts.get(key)
        if account is None:
            config = pj.AccountConfig()
            config.idUri = self.local_contact
            if request.proxy is not None:  # a pre-loaded Route (RFC 3261 §8.1.2)
                proxies = pj.StringVector()
                proxies.append(request.proxy)
                config.sipConfig.proxies = proxies
            if key[1] is not None:
                config.sipConfig.transportId = self._transport_ids[key[1]]
            account = _Account(self._on_answer)
            account.create(config, False)
            self._accounts[key] = account
        return account

    async def send(self, request: OutgoingRequest) -> SipAnswer:
        if self._state != "running" or self._account is None or self._endpoint is None:
            # Stopping, or never started: nothing can leave (the caller reads an unreachable
            # phone, and the command is recorded like any other failure).
            return SipAnswer(status=503, reason="SIP user agent not running", from_wire=False)
        if threading.get_ident() != self._owner:
            # pjlib aborts the process when a thread it does not know calls into it.
            return SipAnswer(
                status=503, reason="SIP user agent owned by another thread", from_wire=False
            )
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._attach(loop)
        future: asyncio.Future[SipAnswer] = loop.create_future()
        param = pj.SendRequestParam()
        token = _attach_token(param)
        key = int(token.this)
        hop = next_hop_transport(request)
        if hop == "tls" and self._tls_port is None:
            # pjsip would say "Unsupported transport"; say what is missing instead.
            return SipAnswer(
                status=503, reason="SIP over TLS is not configured (sip_tls_port)", from_wire=False
            )
        with self._lock:
            self._sweep_abandoned()
            self._pending[key] = _Pending(
                token=token,
                loop=loop,
                future=future,
                watched=hop == "udp",
                with_raw=request.method != "NOTIFY",
            )
        if hop != "udp":
            self._tick_soon(loop)

        param.method = request.method
        option = param.txOption
        option.targetUri = request.target_uri
        if request.body:
            option.contentType = request.content_type
            option.msgBody = request.body.decode()
        option.headers = self._header_vector(request.headers)
        account = self._account_for(request, hop)
        try:
            account.sendRequest(param)
        except pj.Error as exc:
            # pjsua may also fire onSendRequest(503) for this: the entry stays (future cleared)
            # until then, so its token is not freed early.
            with self._lock:
                entry = self._pending.get(key)
                if entry is not None:
                    entry.future = None
            return SipAnswer(
                status=503,
                reason=str(exc.reason or "send failed"),
                from_wire=False,
                transport_failed=True,
            )
        try:
            return await future
        finally:
            if not future.done():
                with self._lock:
                    entry = self._pending.get(key)
                    if entry is not None:
                        entry.future = None  # abandoned; the token lives until the callback

    def _header_vector(self, headers: tuple[tuple[str, str], ...]) -> pj.SipHeaderVector:
        """The SWIG vector for `headers`; every command carries the same few, so keep them
        (building SWIG objects costs more CPU than composing the request)."""
        vector = self._header_vectors.get(headers)
        if vector is None:
            vector = pj.SipHeaderVector()
            for name, value in headers:
                header = pj.SipHeader()
                header.hName = name
                header.hValue = value
                vector.append(header)
            if len(self._header_vectors) >= 64:
                self._header_vectors.clear()
            self._header_vectors[headers] = vector
        return vector

    def _on_answer(self, key: int, prm: pj.OnSendRequestParam) -> None:
        with self._lock:
            entry = self._pending.pop(key, None)
        if entry is None:
            log.debug("answer for an unknown or finished request")
            return
        self._resolve_entry(entry, _answer(prm, with_raw=entry.with_raw))

    def _resolve_entry(self, entry: _Pending, answer: SipAnswer) -> None:
        future, loop = entry.future, entry.loop
        if future is None or loop is None or loop.is_closed():
            return
        # pjsip calls back on the owner thread, the thread of every loop that drove it.
        if not future.done():
            future.set_result(answer)

    def _sweep_abandoned(self) -> None:
        """Drop abandoned entries whose transaction must long have ended (caller holds lock).

        At most once a second: scanning every pending entry on every send cost O(in flight)
        per command (200 entries at 200 in flight)."""
        now = time.monotonic()
        if now - self._last_sweep < 1.0:
            return
        self._last_sweep = now
        horizon = now - (self._transaction_timeout + 30)
        stale = [k for k, e in self._pending.items() if e.future is None and e.created < horizon]
        for key in stale:
            del self._pending[key]

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._pending)


def _is_wildcard(host: str) -> bool:
    return host in ("", "0.0.0.0", "::", "[::]")


def _socket_fds(port: int) -> list[int]:
    """Our process's descriptors of the sockets bound to `port` (pjsip's UDP and TCP listener).

    pjsua2 does not expose its sockets; /proc/self/net/* maps the bound port to a socket inode
    and /proc/self/fd maps the inode to a descriptor (proc(5)).
    """
    inodes: set[str] = set()
    for table in ("udp", "udp6", "tcp", "tcp6"):
        try:
            lines = Path(f"/proc/self/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    fds = []
    for entry in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            fds.append(int(entry.name))
    return sorted(fds)


def _buffer_options() -> pj.SockOptParams:
    params = pj.SockOptParams()
    options = pj.SockOptVector()
    for name in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        option = pj.SockOpt()
        option.level = socket.SOL_SOCKET
        option.optName = name
        option.setOptValInt(_SOCKET_BUFFER)
        options.append(option)
    params.sockOpts = options
    return params


def _free_port(host: str) -> int:
    """A port free for both UDP and TCP on `host` (tests ask for port 0)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise StartupError("no free port for the SIP user agent")
