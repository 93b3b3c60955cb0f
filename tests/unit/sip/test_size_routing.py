"""Which sender carries a request: the UA, or sipbridge's own TCP / TLS stack (the large ones,
and TLS to a phone given by name)."""

import asyncio

from sipbridge.sip.action_uri import OutgoingRequest
from sipbridge.sip.sender import FakeSender
from sipbridge.sip.stream_sender import UDP_SIZE_LIMIT, SizeRoutedSender, TcpRequestSender


def request(target: str, size: int, tls_name: str | None = None) -> OutgoingRequest:
    return OutgoingRequest(
        target_uri=target,
        headers=(("Event", "ACTION-URI"),),
        content_type="application/json",
        body=b"x" * size,
        tls_name=tls_name,
    )


async def routed(target: str, size: int, tls_name: str | None = None) -> tuple[int, int]:
    small, large = FakeSender(), FakeSender()
    await SizeRoutedSender(small, large).send(request(target, size, tls_name))
    return len(small.sent), len(large.sent)


async def test_a_small_request_goes_through_the_ua():
    assert await routed("sip:1001@127.0.0.1:5060", 100) == (1, 0)


async def test_a_request_udp_must_not_carry_goes_over_tcp():
    # RFC 3261 §18.1.1: within 200 bytes of the path MTU, or over 1,300 bytes, TCP.
    assert await routed("sip:1001@127.0.0.1:5060", UDP_SIZE_LIMIT) == (0, 1)


async def test_a_large_request_to_a_tls_phone_goes_to_our_own_stack():
    for target in ("sips:1001@127.0.0.1:5061", "sip:1001@127.0.0.1:5061;transport=tls"):
        assert await routed(target, 5_000) == (0, 1), target


async def test_tls_to_a_name_goes_to_our_own_stack_tls_to_an_address_to_the_ua():
    assert await routed("sips:1001@127.0.0.1:5061", 100, tls_name="phone.test") == (0, 1)
    assert await routed("sips:1001@127.0.0.1:5061", 100) == (1, 0)
    # A name on a plain hop needs no certificate check: the UA carries it.
    assert await routed("sip:1001@127.0.0.1:5060", 100, tls_name="phone.test") == (1, 0)


async def test_our_stack_without_tls_settings_refuses_tls_and_connects_nowhere():
    connected: list[bool] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.append(True)
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sender = TcpRequestSender(
        local_contact=lambda: "sip:sipbridge@127.0.0.1:5070", transaction_timeout=1.0
    )
    try:
        answer = await sender.send(request(f"sips:1001@127.0.0.1:{port}", 5_000, "phone.test"))
    finally:
        server.close()
        await server.wait_closed()
    assert (answer.status, answer.from_wire) == (503, False)
    assert "not configured" in answer.reason
    assert connected == []
