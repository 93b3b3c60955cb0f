"""sipbridge's own SIP listener: what a UAS needs around the requests the tracker must hear.

pjsua2 cannot hand REGISTER or event NOTIFYs to Python (PJSUA2_NOTES.md), so they arrive here.
`ListenerCore` is sans-I/O: bytes and a source in, the bytes to send back out. Before it parses,
answers or records anything it limits: a source outside the allowlist (a stranger) draws from one
budget shared by all strangers, which bounds their audit records and 403s together (a spoofed UDP
flood must not turn sipbridge into a reflector or grow the audit table); an admitted source draws
from its own token bucket. Then it parses strictly (400 when the request is malformed but
answerable, RFC 3261 §8.2), absorbs retransmissions (§17.2.2), answers 405 with Allow for methods
it does not take (§8.2.1), and hands everything else to a `RequestRouter`. `SipListener` puts the
core on asyncio UDP and TCP sockets (and TLS when given a context: the same stream framing,
RFC 3261 §26.2), closes stranger and idle connections and caps open ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sipbridge.sip.access import Allowlist, ConnectionLimits, RateLimiter, TokenBucket
from sipbridge.sip.message import (
    SipMessage,
    SipParseError,
    SipRequest,
    StreamParser,
    build_response,
    parse_message,
    serialize,
)
from sipbridge.sip.transactions import ServerTransactions, TransactionKey
from sipbridge.sip.uri import uri_host

log = logging.getLogger(__name__)

MAX_DATAGRAM = 65_535
MAX_STREAM_BUFFER = 256 * 1024
# Defaults for a core or listener built without settings; config.py documents the same values.
STRANGER_RATE = 5.0
STRANGER_BURST = 20
TCP_IDLE_TIMEOUT = 180.0
TCP_MAX_CONNECTIONS = 1024
TCP_MAX_PER_SOURCE = 32
# A TLS handshake is a few round trips: one not done by then is a peer holding a slot.
TLS_HANDSHAKE_TIMEOUT = 5.0
_LOG_EVERY = 10.0
_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
_SAFE_REASON = re.compile(r"[^\x20-\x7e]")


@dataclass(frozen=True, kw_only=True)
class Source:
    host: str
    port: int
    transport: str  # "udp", "tcp" or "tls"

    def __str__(self) -> str:
        return f"{self.transport}:{uri_host(self.host)}:{self.port}"


@dataclass(frozen=True, kw_only=True)
class Reply:
    """A final response for the router to give."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    content_type: str | None = None


class RequestRouter(Protocol):
    """The application behind the listener: one final reply per accepted request, given now
    (a `Reply`) or later (an awaitable: the final answer follows when it is ready)."""

    allowed_methods: tuple[str, ...]

    def handle(self, request: SipRequest, source: Source) -> Reply | Awaitable[Reply]: ...


# Where a final answer given later goes: the I/O edge hands one in with each message (the
# datagram socket toward the source, or the stream it came on).
LateReply = Callable[[bytes], None]


AuditSink = Callable[[str, str, str], None]


@dataclass
class ListenerStats:
    received: int = 0
    malformed: int = 0
    forbidden: int = 0
    rate_limited: int = 0
    strangers_unrecorded: int = 0  # over the stranger budget: neither answered nor audited
    retransmissions: int = 0
    connections_refused: int = 0  # over a connection cap
    idle_closed: int = 0
    handshakes_failed: int = 0  # TLS: too slow (TLS_HANDSHAKE_TIMEOUT), or not TLS at all
    by_status: dict[int, int] = field(default_factory=dict)
    # New requests per method; a method outside KNOWN_METHODS counts as "other" (a peer
    # chooses the token, and must not grow this table).
    by_method: dict[str, int] = field(default_factory=dict)


KNOWN_METHODS = frozenset(
    ("INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "NOTIFY", "SUBSCRIBE", "INFO",
     "MESSAGE", "PRACK", "UPDATE", "REFER", "PUBLISH")
)  # fmt: skip


class _ThrottledWarning:
    """A warning at most every `every` seconds, counting the events it stands for: a flood must
    become neither a flood of log lines nor a table keyed by (spoofable) source."""

    def __init__(self, clock: Callable[[], float], message: str, every: float = _LOG_EVERY) -> None:
        self._clock = clock
        self._message = message
        self._every = every
        self._last = -1e18
        self._count = 0

    def note(self, source: Source) -> None:
        self._count += 1
        now = self._clock()
        if now - self._last >= self._every:
            log.warning(self._message, self._count, source)
            self._last = now
            self._count = 0


class ListenerCore:
    """Sans-I/O UAS front: `receive(data, source)` returns the datagrams/segments to send back.

    `stranger_budget` is shared by every source outside the allowlist: each stranger packet (or
    connection) that gets a token is audited and, over streams or when `answer_udp_strangers`,
    answered 403; the rest are counted and dropped. Over UDP the default is to drop even within
    the budget: a stranger's source address may be spoofed, and a 403 to it reflects traffic at
    a third party (and tells a scanner that something listens).
    """

    def __init__(
        self,
        router: RequestRouter,
        *,
        allowlist: Allowlist,
        rate_limiter: RateLimiter,
        audit: AuditSink,
        stranger_budget: TokenBucket | None = None,
        answer_udp_strangers: bool = False,
        clock: Callable[[], float] = time.monotonic,
        to_tag: str = "sipbridge",
    ) -> None:
        self._router = router
        self._pending: set[asyncio.Task[None]] = set()
        self._allowlist = allowlist
        self._rate_limiter = rate_limiter
        self._audit = audit
        if stranger_budget is None:
            stranger_budget = TokenBucket(clock, rate=STRANGER_RATE, burst=STRANGER_BURST)
        self._strangers = stranger_budget
        self._answer_udp_strangers = answer_udp_strangers
        self._unrecorded = 0
        self._transactions = ServerTransactions(clock)
        self._to_tag = to_tag
        self._rate_warning = _ThrottledWarning(
            clock, "rate limit: %d requests over their source's rate (last from %s)"
        )
        self._stranger_warning = _ThrottledWarning(
            clock, "allowlist: %d packets or connections from strangers refused (last from %s)"
        )
        self._clock = clock
        self.stats = ListenerStats()

    def table_sizes(self) -> dict[str, int]:
        """Entries in each table the core keeps; each is bounded whatever the traffic."""
        return {
            "rate_limiter": len(self._rate_limiter),
            "transactions": len(self._transactions),
            "pending": len(self._pending),
        }

    def admits(self, host: str) -> bool:
        return self._allowlist.allows(host)

    def receive(
        self, data: bytes, source: Source, reply_later: LateReply | None = None
    ) -> list[bytes]:
        """One datagram: limit, parse, handle."""
        self.stats.received += 1
        if not self._allowlist.allows(source.host):
            if not self._stranger(source, lambda: _first_line(data)):
                return []
            if source.transport == "udp" and not self._answer_udp_strangers:
                return []
            return self._answer_raw(data, 403, "Forbidden")
        if not self._rate_limiter.allow(source.host):
            # Dropped without an answer: over UDP the client retransmits (Timer A / E, RFC 3261
            # §17.1), so a drop delays the request rather than losing it, and answering a flood
            # would double it.
            self._rate_limited(source)
            return []
        try:
            message = parse_message(data)
        except SipParseError as exc:
            self.stats.malformed += 1
            log.debug("malformed message from %s: %s", source, exc.reason)
            return self._answer_raw(data, 400, exc.reason)
        if not isinstance(message, SipRequest):
            return []  # responses to our own requests reach the pjsua2 UA, not this port
        return self.handle_request(message, source, reply_later)

    def receive_message(
        self, message: SipMessage, source: Source, reply_later: LateReply | None = None
    ) -> list[bytes]:
        """One message already framed by a stream transport: limit, handle.

        Over a stream nothing retransmits (Timer A runs on unreliable transports only, RFC 3261
        §17.1.1.2), so a request over the rate is refused with 503 and Retry-After (§21.5.4)
        rather than dropped: the sender learns to back off and no request vanishes silently.
        """
        self.stats.received += 1
        request = message if isinstance(message, SipRequest) else None
        answerable = request is not None and request.method != "ACK"
        if not self._allowlist.allows(source.host):
            if not self._stranger(source, lambda: _describe(message)) or request is None:
                return []
            if not answerable:
                return []
            return self._answer(request, Reply(status=403, reason="Forbidden"), None, source)
        if not self._rate_limiter.allow(source.host):
            self._rate_limited(source)
            if request is None or not answerable:
                return []
            retry_after = str(self._rate_limiter.retry_after(source.host))
            busy = Reply(
                status=503, reason="Service Unavailable", headers=(("Retry-After", retry_after),)
            )
            return self._answer(request, busy, None, source)
        if request is None:
            return []
        return self.handle_request(request, source, reply_later)

    def connection_opened(self, source: Source) -> bool:
        """A stream connection was accepted: True to serve it; a stranger's is refused (and
        recorded within the stranger budget) before any byte of it is read."""
        if self._allowlist.allows(source.host):
            return True
        self._stranger(source, lambda: "connection")
        return False

    def _stranger(self, source: Source, describe: Callable[[], str]) -> bool:
        """Count a stranger's packet; True (audited, may be answered) within the budget."""
        self.stats.forbidden += 1
        self._stranger_warning.note(source)
        if not self._strangers.take():
            self._unrecorded += 1
            self.stats.strangers_unrecorded += 1
            return False
        detail = describe()
        if self._unrecorded:
            detail = f"{detail} [+{self._unrecorded} refused unrecorded before this]"
            self._unrecorded = 0
        self._audit(str(source), "forbidden", detail)
        return True

    def _rate_limited(self, source: Source) -> None:
        self.stats.rate_limited += 1
        self._rate_warning.note(source)

    def handle_request(
        self, request: SipRequest, source: Source, reply_later: LateReply | None = None
    ) -> list[bytes]:
        try:
            match = self._transactions.receive(request)
        except SipParseError as exc:
            return self._answer_raw(serialize(request), 400, exc.reason)
        if not match.is_new:
            self.stats.retransmissions += 1
            return [match.resend] if match.resend is not None else []
        method = request.method if request.method in KNOWN_METHODS else "other"
        self.stats.by_method[method] = self.stats.by_method.get(method, 0) + 1
        if request.method == "ACK":
            return []  # no response to ACK, ever (§17.2.1)
        allowed = self._router.allowed_methods
        if request.method not in allowed:
            reply = Reply(
                status=405,
                reason="Method Not Allowed",
                headers=(("Allow", ", ".join(allowed)),),
            )
        else:
            try:
                outcome = self._router.handle(request, source)
            except Exception:
                log.exception("router failed on %s from %s", request.method, source)
                outcome = Reply(status=500, reason="Server Internal Error")
            if not isinstance(outcome, Reply):
                return self._defer(request, outcome, match.key, source, reply_later)
            reply = outcome
        return self._answer(request, reply, match.key, source)

    def _defer(
        self,
        request: SipRequest,
        later: Awaitable[Reply],
        key: TransactionKey,
        source: Source,
        reply_later: LateReply | None,
    ) -> list[bytes]:
        """The final answer later, through `reply_later`; 100 Trying now only where RFC 4320
        §4.1 allows it.

        Over UDP a 100 to a non-INVITE must not come before the client's Timer E reaches T2
        (3.5 s), and after that it changes nothing for the client (it retransmits every T2
        either way), so none is sent: retransmissions meanwhile are absorbed (§17.2.2). Over
        TCP a 100 may come at any time (§4.1), and says the request arrived.
        """
        now: list[bytes] = []
        if request.method == "INVITE" or source.transport != "udp":
            trying = serialize(build_response(request, 100, "Trying"))
            self._transactions.provisional(key, trying)
            now.append(trying)

        async def finish() -> None:
            try:
                reply = await later
            except Exception:
                log.exception("deferred %s from %s failed", request.method, source)
                reply = Reply(status=500, reason="Server Internal Error")
            for out in self._answer(request, reply, key, source):
                if reply_later is not None:
                    reply_later(out)

        task = asyncio.get_running_loop().create_task(finish())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return now

    async def drain(self) -> None:
        """Wait for deferred replies still under way (at shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def _answer(
        self, request: SipRequest, reply: Reply, key: TransactionKey | None, source: Source
    ) -> list[bytes]:
        response = serialize(
            build_response(
                request,
                reply.status,
                reply.reason,
                to_tag=self._to_tag,
                headers=reply.headers,
                body=reply.body,
                content_type=reply.content_type,
            )
        )
        self.stats.by_status[reply.status] = self.stats.by_status.get(reply.status, 0) + 1
        if key is not None:
            self._transactions.respond(key, response, reliable=source.transport != "udp")
        return [response]

    def _answer_raw(self, data: bytes, status: int, reason: str) -> list[bytes]:
        """Answer a request we will not (or cannot) parse, if it carries what a response needs."""
        response = _salvaged_response(data, status, reason, self._to_tag)
        return [] if response is None else [response]


def _first_line(data: bytes) -> str:
    line = data.split(b"\n", 1)[0][:200]
    return _SAFE_REASON.sub("?", line.decode("latin-1")).strip()


def _describe(message: SipMessage) -> str:
    """The start line of a framed message, for an audit record."""
    if isinstance(message, SipRequest):
        line = f"{message.method} {message.uri} SIP/2.0"
    else:
        line = f"SIP/2.0 {message.status} {message.reason}"
    return _SAFE_REASON.sub("?", line[:200]).strip()


def _salvaged_response(data: bytes, status: int, reason: str, to_tag: str) -> bytes | None:
    """A response built from the raw header lines of a request the parser refused.

    RFC 3261 §8.2: a UAS answers a malformed request with 400 when it can. "Can" means the
    request line is a request (never answer a response or an ACK) and Via, From, To, Call-ID
    and CSeq are present to copy (§8.2.6.2). Otherwise the message is dropped.
    """
    head = data.split(b"\r\n\r\n", 1)[0]
    lines = head.decode("latin-1").split("\r\n")
    request_line = lines[0].split(" ")
    if len(request_line) != 3 or request_line[2] != "SIP/2.0" or request_line[0] == "ACK":
        return None
    if not _TOKEN.match(request_line[0]):
        return None
    compact = {"v": "via", "f": "from", "t": "to", "i": "call-id"}
    copied: dict[str, list[str]] = {"via": [], "from": [], "to": [], "call-id": [], "cseq": []}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        key = name.strip().lower()
        key = compact.get(key, key)
        if colon and key in copied and not any(c in value for c in "\x00\r\n"):
            copied[key].append(value.strip())
    if any(len(values) == 0 for values in copied.values()):
        return None
    to = copied["to"][0]
    if ";tag=" not in to.replace(" ", ""):
        to = f"{to};tag={to_tag}"
    safe_reason = _SAFE_REASON.sub(" ", reason)[:100].strip() or "Bad Request"
    out = [f"SIP/2.0 {status} {safe_reason}"]
    out += [f"Via: {via}" for via in copied["via"]]
    out += [
        f"From: {copied['from'][0]}",
        f"To: {to}",
        f"Call-ID: {copied['call-id'][0]}",
        f"CSeq: {copied['cseq'][0]}",
        "Content-Length: 0",
    ]
    return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")


StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class ListenerSockets:
    """The listener's bound sockets, before anything is served on them: the ports are known
    (the command path puts them in its NOTIFYs' Contact) before the parts that answer exist."""

    udp: socket.socket
    tcp: socket.socket
    tls: socket.socket | None
    port: int
    tls_port: int | None

    @classmethod
    def bind(cls, host: str, port: int, *, tls_port: int | None = None) -> ListenerSockets:
        """UDP and TCP on one port, as SIP wants (RFC 3261 §18), and TLS on its own if asked.
        With port 0 the kernel picks the UDP port, and its TCP twin may be taken (an outgoing
        connection's port): try another. `host` is an address (config.py checks it)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        attempts = 20 if port == 0 else 1
        for attempt in range(attempts):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                udp.bind((host, port))
                chosen = int(udp.getsockname()[1])
                tcp = _stream_socket(family, host, chosen)
            except OSError:
                udp.close()
                if attempt == attempts - 1:
                    raise
                continue
            tls = None
            if tls_port is not None:
                try:
                    tls = _stream_socket(family, host, tls_port)
                except OSError:
                    udp.close()
                    tcp.close()
                    raise
            return cls(
                udp=udp,
                tcp=tcp,
                tls=tls,
                port=chosen,
                tls_port=None if tls is None else int(tls.getsockname()[1]),
            )
        raise AssertionError("unreachable")

    def close(self) -> None:
        for sock in (self.udp, self.tcp, self.tls):
            if sock is not None:
                sock.close()


def _stream_socket(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def bind_udp_and_tcp(
    host: str,
    port: int,
    datagrams: Callable[[], asyncio.DatagramProtocol],
    streams: StreamHandler,
) -> tuple[asyncio.DatagramTransport, asyncio.Server, int]:
    """Serve UDP and TCP on one port at once (the simulated phones' way)."""
    sockets = ListenerSockets.bind(host, port)
    udp, _ = await asyncio.get_running_loop().create_datagram_endpoint(datagrams, sock=sockets.udp)
    tcp = await asyncio.start_server(streams, sock=sockets.tcp)
    return udp, tcp, sockets.port


class SipListener:
    """The core on asyncio sockets: UDP and TCP on one host and port; TLS on `tls_port` when
    given a server context (`sipbridge.tls.server_context`).

    A TCP connection from a stranger is closed as soon as it is accepted, before any byte of it
    is read; one beyond `connections` (per source host or in total) too. An admitted connection
    that sends nothing (or reads none of its answers) for `idle_timeout` seconds is closed: the
    default leaves room for RFC 5626 §4.4.1 keep-alives (a CRLF every 95-120 s over TCP), and a
    phone without them opens a new connection when it next has something to say (RFC 3261 §18.3
    lets either side close).

    The TLS port accepts plain TCP and starts TLS on a connection only once it is admitted and
    counted: a connection holds its place under the caps from accept, through its handshake,
    which must end within `handshake_timeout`. (asyncio's `ssl=` server would hand over a
    connection, and so count it, only after its handshake, so half-open handshakes from one
    source were capped by nothing.)
    """

    def __init__(
        self,
        core: ListenerCore,
        sockets: ListenerSockets,
        *,
        tls: ssl.SSLContext | None = None,
        connections: ConnectionLimits | None = None,
        idle_timeout: float = TCP_IDLE_TIMEOUT,
        handshake_timeout: float = TLS_HANDSHAKE_TIMEOUT,
    ) -> None:
        if (tls is None) != (sockets.tls is None):
            raise ValueError("a TLS context and a TLS socket go together")
        self.core = core
        self._sockets = sockets
        self.host = str(sockets.udp.getsockname()[0])
        self.port = sockets.port
        self.tls_port = sockets.tls_port
        self._tls_context = tls
        if connections is None:
            connections = ConnectionLimits(
                max_total=TCP_MAX_CONNECTIONS, max_per_source=TCP_MAX_PER_SOURCE
            )
        self._limits = connections
        self._idle_timeout = idle_timeout
        self._handshake_timeout = handshake_timeout
        self._refused_warning = _ThrottledWarning(
            time.monotonic, "TCP: %d connections over the caps refused (last from %s)"
        )
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tls: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Serve on the bound sockets."""
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(self.core), sock=self._sockets.udp
        )
        self._tcp = await asyncio.start_server(self._serve_stream, sock=self._sockets.tcp)
        log.info("SIP listener on %s:%d (udp, tcp)", self.host, self.port)
        if self._tls_context is not None and self._sockets.tls is not None:
            # No ssl= here: TLS starts in _serve_stream, after the caps (see the class).
            self._tls = await asyncio.start_server(
                functools.partial(self._serve_stream, transport="tls"), sock=self._sockets.tls
            )
            log.info("SIP listener on %s:%d (tls)", self.host, self.tls_port)

    async def stop(self) -> None:
        await self.core.drain()
        if self._udp is not None:
            self._udp.close()
        for server in (self._tcp, self._tls):
            if server is not None:
                server.close()
                await server.wait_closed()
        for task in list(self._connections):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def open_connections(self) -> int:
        return self._limits.total

    async def _serve_stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: str = "tcp"
    ) -> None:
        peer = writer.get_extra_info("peername")
        source = Source(host=peer[0], port=int(peer[1]), transport=transport)
        if not self.core.connection_opened(source):
            writer.close()
            return
        refused = self._limits.open(source.host)
        if refused is not None:
            self.core.stats.connections_refused += 1
            self._refused_warning.note(source)
            log.debug("refusing TCP connection from %s: %s", source, refused)
            writer.close()
            return
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)  # stop() ends handshakes in progress too
        try:
            if transport == "tls" and not await self._handshake(writer, source):
                return
            await self._serve_admitted(reader, writer, source)
        finally:
            self._limits.close(source.host)
            if task is not None:
                self._connections.discard(task)

    async def _handshake(self, writer: asyncio.StreamWriter, source: Source) -> bool:
        """TLS on an admitted connection (server side); False (and closed) if it fails."""
        assert self._tls_context is not None
        try:
            # asyncio aborts a handshake past its timeout; the outer bound is the backstop.
            async with asyncio.timeout(self._handshake_timeout + 1):
                await writer.start_tls(
                    self._tls_context, ssl_handshake_timeout=self._handshake_timeout
                )
        except (TimeoutError, ssl.SSLError, ConnectionError, OSError) as exc:
            self.core.stats.handshakes_failed += 1
            log.debug("TLS handshake with %s failed: %s", source, exc)
            writer.transport.abort()
            return False
        return True

    async def _serve_admitted(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, source: Source
    ) -> None:
        def reply_later(data: bytes) -> None:
            if writer.is_closing():
                log.info("connection to %s closed before its response was ready", source)
                return
            writer.write(data)

        parser = StreamParser(max_buffer=MAX_STREAM_BUFFER)
        try:
            while True:
                try:
                    async with asyncio.timeout(self._idle_timeout):
                        chunk = await reader.read(65_536)
                except TimeoutError:
                    self.core.stats.idle_closed += 1
                    log.info("closing TCP connection from %s: idle", source)
                    break
                if not chunk:
                    break
                try:
                    parser.feed(chunk)
                    while (message := parser.next_message()) is not None:
                        for out in self.core.receive_message(message, source, reply_later):
                            writer.write(out)
                except SipParseError as exc:
                    # A broken stream cannot be re-synchronised (§18.3): close it.
                    log.info("closing connection from %s: %s", source, exc.reason)
                    break
                # A peer that stops reading holds the connection as surely as a silent one.
                async with asyncio.timeout(self._idle_timeout):
                    await writer.drain()
        except TimeoutError:
            self.core.stats.idle_closed += 1
            log.info("closing TCP connection from %s: it does not read its answers", source)
        except ConnectionError:
            pass
        finally:
            writer.close()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, core: ListenerCore) -> None:
        self._core = core
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self._transport is None:
            return
        source = Source(host=addr[0], port=int(addr[1]), transport="udp")
        transport = self._transport
        for out in self._core.receive(data, source, lambda late: transport.sendto(late, addr)):
            # Symmetric response to the packet's source (RFC 3581), which is where NATed
            # phones and replicating registrars listen.
            self._transport.sendto(out, addr)
