"""Large requests over TCP from sipbridge's own SIP stack, and the sender that picks by size.

Why a second sender: the PyPI pjsua2 wheel encodes every outgoing message into a buffer of
PJSIP_MAX_PKT_LEN (4,000 bytes), a compile-time constant (`pjsip_tx_data_encode`,
sip_transport.c); past it pjsua fails with PJSIP_EMSGTOOLONG before anything is sent. No
runtime setting changes that buffer (pjsip_cfg() has none, pjsua2's EpConfig none), yet Poly
phones take command bodies up to 20 KB (manual 002). So a request whose message would reach
`UDP_SIZE_LIMIT` goes out here instead, over TCP as RFC 3261 §18.1.1 requires for a message
over 1,300 bytes when the path MTU is unknown, even to a phone that registered over UDP (a
phone that listens on UDP listens on TCP on the same port, §18.2.1). pjsip's own switch to TCP
(PJSIP_UDP_SIZE_THRESHOLD) never fired for sipbridge: accounts bound to our UDP transport set a
transport selector, and pjsip then keeps the destination on that transport's type.

The same stack speaks TLS (Python's ssl) to a phone whose contact names a host: pjsip is only
ever handed addresses (sipbridge.sip.resolver), so its TLS would check the certificate against
the address, while RFC 5922 §7 wants the name the URI gave (`OutgoingRequest.tls_name`). Here
the connection goes to the resolved address with that name as SNI, the chain is checked by
OpenSSL and the name by `sipbridge.tls.peer_names_match`, all before a byte of the request
leaves; and never in clear.

A connection is kept after its final response for the next request to the same hop
(sipbridge.sip.stream_pool: bounded, closed when idle), so a TLS phone is not sent a handshake
per command. The transaction follows RFC 3261 §17.1.2 over a reliable transport (no
retransmission; Timer F bounds the whole wait, connecting and the handshake included);
provisional responses are skipped.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
from collections.abc import Callable

from sipbridge.sip.action_uri import OutgoingRequest, SipAnswer, next_hop_transport
from sipbridge.sip.challenge import ChallengeAnsweringSender
from sipbridge.sip.message import (
    Headers,
    SipParseError,
    SipRequest,
    SipResponse,
    parse_uri,
    serialize,
    top_via_branch,
    uri_host,
)
from sipbridge.sip.sender import NotifySender
from sipbridge.sip.stream_pool import Hop, Stream, StreamPool
from sipbridge.tls import SipTls, client_context, peer_names_match

log = logging.getLogger(__name__)

# RFC 3261 §18.1.1: over 1,300 bytes (path MTU unknown), a request goes over TCP.
UDP_SIZE_LIMIT = 1300
# What pjsua adds to a request beyond what `build_request` writes (User-Agent, Allow,
# Supported...): measured with sipp's message log, rounded up, so the choice errs toward TCP.
_PJSUA_EXTRA_BYTES = 200
_CONNECT_TIMEOUT = 3.0


def build_request(
    request: OutgoingRequest,
    *,
    local_contact: str,
    branch: str,
    from_tag: str,
    call_id: str,
    cseq: int = 1,
    transport: str = "TCP",
    via_port: int | None = None,
) -> SipRequest:
    """The request on the wire for an `OutgoingRequest` sent over TCP or TLS (RFC 3261 §8.1.1)."""
    local = parse_uri(local_contact)
    via_host = uri_host(local.host)
    port = via_port or local.port
    via_port_text = f":{port}" if port else ""
    target = request.target_uri
    headers: list[tuple[str, str]] = [
        ("Via", f"SIP/2.0/{transport} {via_host}{via_port_text};rport;branch={branch}"),
        ("Max-Forwards", "70"),
        ("From", f"<{local_contact}>;tag={from_tag}"),
        ("To", f"<{target}>"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {request.method}"),
    ]
    if request.proxy is not None:
        headers.append(("Route", f"<{request.proxy}>"))
    headers.extend(request.headers)
    if request.body:
        headers.append(("Content-Type", request.content_type))
    headers.append(("Content-Length", str(len(request.body))))
    return SipRequest(
        method=request.method, uri=target, headers=Headers(headers), body=request.body
    )


def wire_size(request: OutgoingRequest, local_contact: str) -> int:
    """About how many bytes the request takes on the wire, whichever UA sends it."""
    probe = build_request(
        request,
        local_contact=local_contact,
        branch="z9hG4bK" + "0" * 32,
        from_tag="0" * 32,
        call_id="0" * 32 + "@sipbridge",
    )
    return len(serialize(probe)) + _PJSUA_EXTRA_BYTES


def _next_hop(request: OutgoingRequest, *, secure: bool) -> tuple[str, int]:
    """Where to connect: the outbound proxy, else the Request-URI's host (RFC 3263 §4.2: 5060
    for TCP, 5061 for TLS when no port is given)."""
    hop = parse_uri(request.proxy or request.target_uri)
    host = hop.host[1:-1] if hop.host.startswith("[") else hop.host
    return host, hop.port or (5061 if secure else 5060)


def _as_answer(response: SipResponse) -> SipAnswer:
    return SipAnswer(
        status=response.status,
        reason=response.reason,
        from_wire=True,
        raw=serialize(response).decode("utf-8", "replace") if response.status >= 300 else None,
    )


def _unreached(reason: str) -> SipAnswer:
    """Nothing reached the phone: RFC 3263 §4.3's transport failure, the next target may do."""
    return SipAnswer(status=503, reason=reason, from_wire=False, transport_failed=True)


class _ClosedUnanswered(EOFError):
    """The connection ended before any byte came back for our request."""


class TcpRequestSender:
    """A `NotifySender` that sends requests over TCP or TLS connections of its own.

    TLS when the next hop is TLS (`sips:`, `;transport=tls`), with `tls` (the user agent's
    settings); without them a TLS request is refused, never sent in clear. Connections are
    reused through `pool` (default: a `StreamPool` of its defaults).
    """

    def __init__(
        self,
        *,
        local_contact: Callable[[], str],
        transaction_timeout: float,
        tls: SipTls | None = None,
        pool: StreamPool | None = None,
    ) -> None:
        # A callable: the UA whose address goes in our Via knows its port only once started.
        self._local_contact = local_contact
        self._timeout = transaction_timeout
        self._tls = tls
        self._tls_context = client_context(tls) if tls is not None else None
        self._pool = pool if pool is not None else StreamPool()

    def start(self) -> None:
        pass  # nothing is bound ahead: connections open on the first request to a hop

    def stop(self) -> None:
        """Close the idle connections."""
        self._pool.close()

    @property
    def local_contact(self) -> str:
        return self._local_contact()

    async def send(self, request: OutgoingRequest) -> SipAnswer:
        secure = next_hop_transport(request) == "tls"
        if secure and self._tls_context is None:
            return SipAnswer(
                status=503, reason="SIP over TLS is not configured (sip_tls_port)", from_wire=False
            )
        host, port = _next_hop(request, secure=secure)
        branch = "z9hG4bK" + secrets.token_hex(16)
        message = build_request(
            request,
            local_contact=self._local_contact(),
            branch=branch,
            from_tag=secrets.token_hex(8),
            call_id=f"{secrets.token_hex(16)}@sipbridge",
            transport="TLS" if secure else "TCP",
            via_port=self._tls.port if secure and self._tls is not None else None,
        )
        # Timer F (RFC 3261 §17.1.2.2) bounds it all: connecting, the handshake, the answer.
        timer_f = asyncio.get_running_loop().time() + self._timeout
        hop = Hop(host=host, port=port, tls_name=(request.tls_name or host) if secure else None)
        data = serialize(message)
        stream = await self._pool.take(hop)
        if stream is not None:
            answer = await self._exchange(stream, data, branch, timer_f)
            if answer is not None:
                return answer
            # The peer closed the idle connection as we wrote (RFC 3261 §18.3 lets it): it had
            # read nothing of ours, so the request goes once more, on a new connection.
            log.info("reused connection to %s:%d was closed; reconnecting", host, port)
        opened = await self._connect(host, port, request, secure, timer_f)
        if isinstance(opened, SipAnswer):
            return opened
        answer = await self._exchange(Stream(hop, *opened), data, branch, timer_f)
        assert answer is not None  # only a reused stream gives None
        return answer

    async def _exchange(
        self, stream: Stream, data: bytes, branch: str, timer_f: float
    ) -> SipAnswer | None:
        """Write the request and wait for its final response; the stream goes back to the pool
        after one. None: a reused stream was found closed before anything came back."""
        try:
            stream.writer.write(data)
            async with asyncio.timeout_at(timer_f):
                await stream.writer.drain()
                answer = await _final_response(stream, branch)
        except TimeoutError:
            stream.close()  # a late answer may still come: the stream is not reusable
            return SipAnswer(status=408, reason="Request Timeout", from_wire=False)
        except (_ClosedUnanswered, ConnectionError) as exc:
            stream.close()
            if stream.reused:
                return None
            return SipAnswer(status=503, reason=f"connection failed: {exc}", from_wire=False)
        except (OSError, ssl.SSLError, SipParseError, EOFError) as exc:
            stream.close()
            return SipAnswer(status=503, reason=f"connection failed: {exc}", from_wire=False)
        self._pool.give_back(stream)
        return answer

    async def _connect(
        self, host: str, port: int, request: OutgoingRequest, secure: bool, timer_f: float
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | SipAnswer:
        """A connection whose peer is checked (TLS), or the answer saying why there is none."""
        kind = "TLS" if secure else "TCP"
        name = request.tls_name or host
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(min(timer_f, loop.time() + _CONNECT_TIMEOUT)):
                if secure:
                    reader, writer = await asyncio.open_connection(
                        host, port, ssl=self._tls_context, server_hostname=name
                    )
                else:
                    reader, writer = await asyncio.open_connection(host, port)
        except ssl.SSLCertVerificationError as exc:
            return _unreached(
                f"TLS certificate verification failed for {name} at {host}:{port}: "
                f"{exc.verify_message or exc.reason}"
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            reason = f"{kind} connect timed out" if isinstance(exc, TimeoutError) else str(exc)
            log.info("no %s to %s:%d for %s: %s", kind, host, port, request.method, reason)
            return _unreached(f"no {kind} to {host}:{port}: {reason}")
        if secure and self._tls is not None and self._tls.verify_peers:
            peer = writer.get_extra_info("peercert") or {}
            if not peer_names_match(peer, name):
                writer.transport.abort()  # nothing was written: the request never left
                return _unreached(
                    f"TLS certificate verification failed: the certificate of {host}:{port} "
                    f"does not name {name} (RFC 5922 §7)"
                )
        return reader, writer


async def _final_response(stream: Stream, branch: str) -> SipAnswer:
    parser = stream.parser  # it may hold the start of a message read while the stream idled
    received = False
    while True:
        try:
            data = await stream.reader.read(4096)
        except ConnectionError:
            if received:
                raise
            raise _ClosedUnanswered("the connection was reset before any answer") from None
        if not data:
            if not received:
                raise _ClosedUnanswered("the phone closed the connection without answering")
            raise EOFError("the phone closed the connection before a final response")
        received = True
        parser.feed(data)
        while (message := parser.next_message()) is not None:
            if not isinstance(message, SipResponse) or top_via_branch(message) != branch:
                continue  # a request or a stray answer on our connection: not ours
            if message.status >= 200:
                return _as_answer(message)


class SizeRoutedSender:
    """Sends small requests through the UA and those that UDP must not carry over TCP.

    A request at or over `UDP_SIZE_LIMIT` goes to `large` whatever the phone registered over
    (over TLS too: pjsua's 4,000-byte buffer holds for every transport), and so does one to a
    TLS hop given by name; the caller sees one `NotifySender`, so the phone's lane covers
    either path.
    """

    def __init__(self, small: NotifySender, large: NotifySender) -> None:
        self._small = small
        self._large = large

    @property
    def local_contact(self) -> str:
        return self._small.local_contact

    async def send(self, request: OutgoingRequest) -> SipAnswer:
        # A TLS hop whose certificate must name a host (RFC 5922 §7) goes to our own stack as
        # well: pjsip would check the address it was handed.
        if (
            next_hop_transport(request) == "tls" and request.tls_name is not None
        ) or wire_size(request, self._small.local_contact) >= UDP_SIZE_LIMIT:
            return await self._large.send(request)
        return await self._small.send(request)

    def start(self) -> None:
        self._large.start()
        self._small.start()

    def stop(self) -> None:
        self._small.stop()
        self._large.stop()


def wire_sender(
    agent: NotifySender, *, transaction_timeout: float, tls: SipTls | None = None
) -> NotifySender:
    """The UA as the rest of sipbridge sees it: large requests (and TLS to names) from our own
    stack, one digest challenge answered (sipbridge.sip.challenge), either way inside one
    `send`. `tls`: the UA's TLS settings, for our own stack's TLS."""
    large = TcpRequestSender(
        local_contact=lambda: agent.local_contact,
        transaction_timeout=transaction_timeout,
        tls=tls,
    )
    return ChallengeAnsweringSender(SizeRoutedSender(agent, large))
