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

One connection per request, closed after the final response: large commands are rare, and a
phone is sent one command at a time (commands/lanes.py). The transaction follows RFC 3261 §17.1.2
over a reliable transport (no retransmission, Timer F bounds the wait); provisional responses
are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable

from sipbridge.sip.action_uri import OutgoingRequest, SipAnswer, next_hop_transport
from sipbridge.sip.challenge import ChallengeAnsweringSender
from sipbridge.sip.message import (
    Headers,
    SipParseError,
    SipRequest,
    SipResponse,
    StreamParser,
    parse_uri,
    serialize,
    top_via_branch,
    uri_host,
)
from sipbridge.sip.sender import NotifySender

log = logging.getLogger(__name__)

# RFC 3261 §18.1.1: over 1,300 bytes (path MTU unknown), a request goes over TCP.
UDP_SIZE_LIMIT = 1300
# What pjsua adds to a request beyond what `build_request` writes (User-Agent, Allow,
# Supported...): measured with sipp's message log, rounded up, so the choice errs toward TCP.
_PJSUA_EXTRA_BYTES = 200
# A phone's answer to a NOTIFY is small; a buffer bound keeps a hostile peer's stream bounded.
_MAX_ANSWER_BYTES = 65536
_CONNECT_TIMEOUT = 3.0


def build_request(
    request: OutgoingRequest,
    *,
    local_contact: str,
    branch: str,
    from_tag: str,
    call_id: str,
    cseq: int = 1,
) -> SipRequest:
    """The request on the wire for an `OutgoingRequest` sent over TCP (RFC 3261 §8.1.1)."""
    local = parse_uri(local_contact)
    via_host = uri_host(local.host)
    via_port = f":{local.port}" if local.port else ""
    target = request.target_uri
    headers: list[tuple[str, str]] = [
        ("Via", f"SIP/2.0/TCP {via_host}{via_port};rport;branch={branch}"),
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


def _next_hop(request: OutgoingRequest) -> tuple[str, int]:
    """Where to connect: the outbound proxy, else the Request-URI's host (RFC 3263 §4.2, TCP:
    5060 when no port is given; sips goes elsewhere and is not sent here)."""
    hop = parse_uri(request.proxy or request.target_uri)
    host = hop.host[1:-1] if hop.host.startswith("[") else hop.host
    return host, hop.port or 5060


def _as_answer(response: SipResponse) -> SipAnswer:
    return SipAnswer(
        status=response.status,
        reason=response.reason,
        from_wire=True,
        raw=serialize(response).decode("utf-8", "replace") if response.status >= 300 else None,
    )


class TcpRequestSender:
    """A `NotifySender` that sends each request over a TCP connection of its own."""

    def __init__(self, *, local_contact: Callable[[], str], transaction_timeout: float) -> None:
        # A callable: the UA whose address goes in our Via knows its port only once started.
        self._local_contact = local_contact
        self._timeout = transaction_timeout

    @property
    def local_contact(self) -> str:
        return self._local_contact()

    def start(self) -> None:
        pass  # nothing is bound ahead: each request opens its own connection

    def stop(self) -> None:
        pass

    async def send(self, request: OutgoingRequest) -> SipAnswer:
        host, port = _next_hop(request)
        branch = "z9hG4bK" + secrets.token_hex(16)
        message = build_request(
            request,
            local_contact=self._local_contact(),
            branch=branch,
            from_tag=secrets.token_hex(8),
            call_id=f"{secrets.token_hex(16)}@sipbridge",
        )
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT):
                reader, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as exc:
            reason = "TCP connect timed out" if isinstance(exc, TimeoutError) else str(exc)
            log.info(
                "no TCP connection to %s:%d for a large %s: %s", host, port, request.method, reason
            )
            return SipAnswer(
                status=503, reason=f"no TCP to {host}:{port}: {reason}", from_wire=False
            )
        try:
            writer.write(serialize(message))
            async with asyncio.timeout(self._timeout):  # Timer F (RFC 3261 §17.1.2.2)
                await writer.drain()
                return await _final_response(reader, branch)
        except TimeoutError:
            return SipAnswer(status=408, reason="Request Timeout", from_wire=False)
        except (OSError, SipParseError, EOFError) as exc:
            return SipAnswer(status=503, reason=f"TCP connection failed: {exc}", from_wire=False)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _final_response(reader: asyncio.StreamReader, branch: str) -> SipAnswer:
    parser = StreamParser(max_buffer=_MAX_ANSWER_BYTES)
    while True:
        data = await reader.read(4096)
        if not data:
            raise EOFError("the phone closed the connection before a final response")
        parser.feed(data)
        while (message := parser.next_message()) is not None:
            if not isinstance(message, SipResponse) or top_via_branch(message) != branch:
                continue  # a request or a stray answer on our connection: not ours
            if message.status >= 200:
                return _as_answer(message)


class SizeRoutedSender:
    """Sends small requests through the UA and those that UDP must not carry over TCP.

    A request at or over `UDP_SIZE_LIMIT` goes to `large` whatever the phone registered over;
    the caller sees one `NotifySender`, so the phone's lane covers either path.
    """

    def __init__(self, small: NotifySender, large: NotifySender) -> None:
        self._small = small
        self._large = large

    @property
    def local_contact(self) -> str:
        return self._small.local_contact

    async def send(self, request: OutgoingRequest) -> SipAnswer:
        # Over TLS the UA's own connection carries it: the stream sender speaks plain TCP only,
        # and a command must never leave in clear for a phone reached over TLS.
        if (
            next_hop_transport(request) != "tls"
            and wire_size(request, self._small.local_contact) >= UDP_SIZE_LIMIT
        ):
            return await self._large.send(request)
        return await self._small.send(request)

    def start(self) -> None:
        self._large.start()
        self._small.start()

    def stop(self) -> None:
        self._small.stop()
        self._large.stop()


def wire_sender(agent: NotifySender, *, transaction_timeout: float) -> NotifySender:
    """The UA as the rest of sipbridge sees it: large requests over TCP from our own stack,
    one digest challenge answered (sipbridge.sip.challenge), either way inside one `send`."""
    large = TcpRequestSender(
        local_contact=lambda: agent.local_contact, transaction_timeout=transaction_timeout
    )
    return ChallengeAnsweringSender(SizeRoutedSender(agent, large))
