"""Our own SIP stack keeps a TCP connection per hop between requests (sip/stream_pool.py),
against a phone on loopback that counts its connections and can close them or send strays."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import pytest

from sipbridge.sip.action_uri import OutgoingRequest
from sipbridge.sip.message import (
    SipRequest,
    StreamParser,
    build_response,
    serialize,
    top_via_branch,
)
from sipbridge.sip.stream_pool import StreamPool
from sipbridge.sip.stream_sender import TcpRequestSender

pytestmark = pytest.mark.integration


@dataclass
class Phone:
    """Answers every request 200 on the connection it came on; `close_after` closes a
    connection after that many answers, `stray` sends an unrelated response first."""

    port: int = 0
    accepted: int = 0
    ended: int = 0  # connections the other side closed or reset
    requests: int = 0
    close_after: int | None = None
    stray: bool = False
    close_unanswered: bool = False  # close a reused connection on its next request, unanswered
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.writers.append(writer)
        parser = StreamParser(max_buffer=65_536)
        answered = 0
        try:
            while data := await reader.read(65_536):
                parser.feed(data)
                while (message := parser.next_message()) is not None:
                    assert isinstance(message, SipRequest)
                    if self.close_unanswered and answered:
                        self.close_unanswered = False
                        writer.transport.abort()
                        return
                    self.requests += 1
                    if self.stray:
                        writer.write(_answer(message, branch="z9hG4bK-stray", status=500))
                    writer.write(_answer(message, branch=top_via_branch(message), status=200))
                    answered += 1
                    if self.close_after is not None and answered >= self.close_after:
                        await writer.drain()
                        writer.close()
                        return
        except ConnectionError:
            pass
        self.ended += 1


def _answer(request: SipRequest, *, branch: str | None, status: int) -> bytes:
    if branch is not None and branch != top_via_branch(request):
        via = (request.headers.get("Via") or "").split(";branch=")[0] + f";branch={branch}"
        request = replace(request, headers=request.headers.replaced("Via", via))
    return serialize(build_response(request, status, "OK", to_tag="p"))


@pytest.fixture
async def phone() -> AsyncIterator[Phone]:
    phone = Phone()
    server = await asyncio.start_server(phone.serve, "127.0.0.1", 0)
    phone.port = int(server.sockets[0].getsockname()[1])
    try:
        yield phone
    finally:
        for writer in phone.writers:
            writer.close()
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()


def _sender(pool: StreamPool) -> TcpRequestSender:
    return TcpRequestSender(
        local_contact=lambda: "sip:sipbridge@127.0.0.1:5070", transaction_timeout=2.0, pool=pool
    )


def _notify(port: int) -> OutgoingRequest:
    return OutgoingRequest(
        target_uri=f"sip:1001@127.0.0.1:{port};transport=tcp",
        headers=(("Event", "ACTION-URI"),),
        content_type="application/json",
        body=b'{"command-URI":"/api/v1/callctrl/holdCall","data":{"Ref":"c@h"}}',
    )


async def test_requests_to_one_hop_share_a_connection(phone: Phone) -> None:
    pool = StreamPool()
    sender = _sender(pool)
    try:
        for _ in range(5):
            assert (await sender.send(_notify(phone.port))).status == 200
        assert (phone.accepted, phone.requests, pool.idle) == (1, 5, 1)
    finally:
        sender.stop()
    await asyncio.sleep(0.05)
    assert pool.idle == 0


async def test_a_connection_the_phone_closed_is_replaced_and_nothing_is_lost(phone: Phone) -> None:
    phone.close_after = 1  # the phone closes each connection after its answer
    pool = StreamPool()
    sender = _sender(pool)
    try:
        for _ in range(3):
            assert (await sender.send(_notify(phone.port))).status == 200
            await asyncio.sleep(0.05)  # the watcher sees the close: nothing stale stays pooled
            assert pool.idle == 0
        assert (phone.accepted, phone.requests) == (3, 3)
    finally:
        sender.stop()


async def test_a_close_racing_the_write_costs_one_resend_not_the_command(phone: Phone) -> None:
    pool = StreamPool(idle_timeout=30)
    sender = _sender(pool)
    try:
        assert (await sender.send(_notify(phone.port))).status == 200
        # The phone closes the pooled connection as the next request arrives (RFC 3261 §18.3
        # lets it close an idle one at any time): the stream looked open when it was taken.
        phone.close_unanswered = True
        assert (await sender.send(_notify(phone.port))).status == 200
        assert (phone.accepted, phone.requests) == (2, 2)
    finally:
        sender.stop()


async def test_an_idle_connection_is_closed_after_its_timeout(phone: Phone) -> None:
    pool = StreamPool(idle_timeout=0.2)
    sender = _sender(pool)
    try:
        assert (await sender.send(_notify(phone.port))).status == 200
        assert pool.idle == 1
        await asyncio.sleep(0.4)
        assert pool.idle == 0
        assert phone.ended == 1  # closed at our end, not merely forgotten
        assert (await sender.send(_notify(phone.port))).status == 200
        assert phone.accepted == 2
    finally:
        sender.stop()


async def test_stray_messages_on_a_pooled_connection_do_not_answer_the_next_request(
    phone: Phone,
) -> None:
    phone.stray = True  # a response with another branch before each real one
    pool = StreamPool()
    sender = _sender(pool)
    try:
        for _ in range(3):
            answer = await sender.send(_notify(phone.port))
            assert answer.status == 200  # the 500 with another branch is not ours
        assert phone.accepted == 1
    finally:
        sender.stop()


async def test_the_pool_keeps_at_most_per_hop_connections(phone: Phone) -> None:
    pool = StreamPool(per_hop=1)
    sender = _sender(pool)
    try:
        # Two at once need two connections; only one is kept afterwards.
        answers = await asyncio.gather(*(sender.send(_notify(phone.port)) for _ in range(2)))
        assert [a.status for a in answers] == [200, 200]
        assert (phone.accepted, pool.idle) == (2, 1)
    finally:
        sender.stop()


async def test_a_request_to_a_closed_port_fails_as_a_transport_failure() -> None:
    with contextlib.closing(__import__("socket").socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sender = _sender(StreamPool())
    answer = await sender.send(_notify(port))
    assert (answer.status, answer.from_wire, answer.transport_failed) == (503, False, True)


def test_serialize_is_what_the_phone_parses() -> None:
    # The fake phone's own framing: a request serialized by our stack parses back whole.
    from sipbridge.sip.stream_sender import build_request

    message = build_request(
        _notify(5060),
        local_contact="sip:sipbridge@127.0.0.1:5070",
        branch="z9hG4bK-x",
        from_tag="t",
        call_id="c@h",
    )
    parser = StreamParser(max_buffer=65_536)
    parser.feed(serialize(message))
    parsed = parser.next_message()
    assert isinstance(parsed, SipRequest) and top_via_branch(parsed) == "z9hG4bK-x"
