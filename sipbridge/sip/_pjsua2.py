"""The pjsua2 user agent: the only module in sipbridge that imports pjsua2.

Lifecycle (one state table, enforced by `_Lifecycle`):

    created --start()--> running --stop()--> stopped

Two ways to drive pjsip (the Endpoint always has `threadCnt = 0`, no media):
* In the event loop (`start()` called from a running asyncio loop, as `sipbridge serve` does):
  the loop's thread creates the Endpoint and is the only thread that touches it. pjsip's sockets
  are watched with `loop.add_reader`, so a reply is read by `libHandleEvents(0)` as soon as it
  arrives, and a timer polls for pjsip's own timers (retransmissions, Timer F) and for TCP
  connections opened after start (1 ms while commands are in flight, 10 ms when idle).
  Callbacks run on the loop's thread and resolve futures directly. No GIL hand-off and no pjsip
  lock contention between two threads: about 20 % less CPU per NOTIFY and 25 % lower latency at
  one in flight than the pump thread (bench.bare_pjsua2 A/B, docs/performance.md).
* With a pump thread (`start()` called outside a loop, e.g. a session-wide UA in tests): the
  thread creates the Endpoint and loops over `libHandleEvents(10)`, which releases the GIL.
  Any thread may call `send` after `libRegisterThread` (an unregistered thread calling into
  pjlib aborts the process); a callback resolves its future with `loop.call_soon_threadsafe`.

Correlation: `SendRequestParam.userData` carries a SWIG object (a token); the callback hands back
its pointer. A token stays referenced until its callback has fired (or long after its transaction
must have ended), so no pointer can be reused while an answer for it may still arrive: a late
answer can never be mistaken for another command's.
"""

from __future__ import annotations

import asyncio
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

from sipbridge.sip.action_uri import OutgoingRequest, SipAnswer
from sipbridge.sip.uri import parse_uri, uri_host
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


class UserAgentError(Exception):
    """The SIP user agent could not start (port in use, bad address) or is not running."""


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
    would never be deleted: about 110 bytes a command (`bench/run --soak` grew 19 MB a minute
    at 2,000/s). pjsua only hands the pointer back, so ownership is taken back at once and the
    token dies with the request's `_Pending` entry, after the callback.
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
    # Retry-After, Allow (outcome.py); a 2xx is copied only when asked.
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
        raise UserAgentError("cannot find the pjsua2 extension module")
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
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._start_error: BaseException | None = None
        self._account: _Account | None = None
        # Accounts by (outbound proxy, next-hop transport). pjsip routes by an account's route
        # set, never by a Route header added as a plain extra header; and an account bound to
        # one of our transports takes its Via address from it, where an unbound one probes the
        # route with a throwaway socket on every request (socket, connect, getsockname, close:
        # pjsip_tpmgr_find_local_addr2, seen with strace in bench/run).
        self._accounts: dict[tuple[str | None, str | None], _Account] = {}
        self._transport_ids: dict[str, int] = {}
        self._endpoint: pj.Endpoint | None = None
        self._registered_threads: set[int] = set()
        self._loop: asyncio.AbstractEventLoop | None = None  # set when driven by the loop
        self._watched: list[int] = []
        self._header_vectors: dict[tuple[tuple[str, str], ...], pj.SipHeaderVector] = {}
        self._last_sweep = 0.0
        self._tick: asyncio.TimerHandle | None = None
        self._tls_port: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the transports: in the running event loop if there is one, else a pump thread."""
        if self._state != "created":
            raise UserAgentError(f"cannot start a user agent that is {self._state}")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            self._start_in_loop(loop)
            return
        self._thread = threading.Thread(target=self._pump, name="pjsua2-pump", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=10)
        if self._start_error is not None:
            self._thread.join(timeout=5)
            self._state = "stopped"
            raise UserAgentError(f"SIP user agent failed to start: {self._start_error}")
        if not self._ready.is_set():
            raise UserAgentError("SIP user agent did not start within 10 s")
        self._state = "running"
        log.info("SIP user agent on %s:%d (udp, tcp)", self._host, self.port)

    def stop(self) -> None:
        if self._state != "running":
            return
        self._state = "stopped"
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._loop is not None:
            self._stop_in_loop(self._loop)
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

    # -- the pump thread ---------------------------------------------------------------------

    def _pump(self) -> None:
        try:
            self._create_endpoint()
        except BaseException as exc:
            self._start_error = exc
            self._destroy_endpoint()
            self._ready.set()
            return
        self._ready.set()
        endpoint = self._endpoint
        assert endpoint is not None
        while not self._stop.is_set():
            endpoint.libHandleEvents(10)
        self._destroy_endpoint()

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
                raise UserAgentError(
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
            raise UserAgentError(
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

    def _start_in_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            self._create_endpoint()
        except BaseException as exc:
            self._destroy_endpoint()
            self._state = "stopped"
            raise UserAgentError(f"SIP user agent failed to start: {exc}") from exc
        self._loop = loop
        self._registered_threads.add(threading.get_ident())
        self._watched = _socket_fds(self._port)
        for fd in self._watched:
            loop.add_reader(fd, self._poll, 1)
        self._tick = loop.call_later(_IDLE_POLL, self._on_tick)
        self._state = "running"
        log.info("SIP user agent on %s:%d (udp, tcp), in the event loop", self._host, self.port)

    def _poll(self, passes: int = _MAX_POLLS) -> None:
        """Let pjsip read what is ready and run its expired timers, in at most `passes` passes.

        A readable watched socket needs one pass (`add_reader` asks for that): the loop's
        selector is level-triggered, so a packet left unread wakes it again on the next turn,
        and polling on until pjsip found nothing cost a second, empty pass (a timer scan and an
        epoll_wait) on every answer. The tick drains: one pass handles only a few expired timers
        (about 8, measured), and undrained, finished transactions outlive Timer K and memory
        grows without end (bench/run --soak measured 14 KB a command before the drain).
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

    def _stop_in_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._tick is not None:
            self._tick.cancel()
        for fd in self._watched:
            loop.remove_reader(fd)
        self._watched = []
        self._destroy_endpoint()

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
            raise UserAgentError("the SIP user agent is not running")
        self._register_this_thread(self._endpoint)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[SipAnswer] = loop.create_future()
        param = pj.SendRequestParam()
        token = _attach_token(param)
        key = int(token.this)
        hop = _next_hop_transport(request)
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
        (building SWIG objects costs more CPU than composing the request, py-spy)."""
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

    def _register_this_thread(self, endpoint: pj.Endpoint) -> None:
        ident = threading.get_ident()
        if ident in self._registered_threads:
            return
        if not endpoint.libIsThreadRegistered():
            endpoint.libRegisterThread(f"sipbridge-{ident}")
        self._registered_threads.add(ident)

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
        if loop is self._loop:  # driven by this loop: we are on its thread
            if not future.done():
                future.set_result(answer)
            return

        def resolve() -> None:
            if not future.done():
                future.set_result(answer)

        loop.call_soon_threadsafe(resolve)

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


def _next_hop_transport(request: OutgoingRequest) -> str:
    """udp, tcp or tls: how the request leaves (the proxy's URI if any, RFC 3263 §4.1)."""
    hop = parse_uri(request.proxy or request.target_uri)
    return (hop.transport or ("tls" if hop.scheme == "sips" else "udp")).lower()


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
    raise UserAgentError("no free port for the SIP user agent")
