"""Which sender carries a request: the UA, or sipbridge's own TCP stack for the large ones."""

from sipbridge.sip.action_uri import OutgoingRequest
from sipbridge.sip.sender import FakeSender
from sipbridge.sip.stream_sender import UDP_SIZE_LIMIT, SizeRoutedSender


def request(target: str, size: int) -> OutgoingRequest:
    return OutgoingRequest(
        target_uri=target,
        headers=(("Event", "ACTION-URI"),),
        content_type="application/json",
        body=b"x" * size,
    )


async def routed(target: str, size: int) -> tuple[int, int]:
    small, large = FakeSender(), FakeSender()
    await SizeRoutedSender(small, large).send(request(target, size))
    return len(small.sent), len(large.sent)


async def test_a_small_request_goes_through_the_ua():
    assert await routed("sip:1001@127.0.0.1:5060", 100) == (1, 0)


async def test_a_request_udp_must_not_carry_goes_over_tcp():
    # RFC 3261 §18.1.1: within 200 bytes of the path MTU, or over 1,300 bytes, TCP.
    assert await routed("sip:1001@127.0.0.1:5060", UDP_SIZE_LIMIT) == (0, 1)


async def test_a_large_request_to_a_tls_phone_never_leaves_in_clear():
    for target in ("sips:1001@127.0.0.1:5061", "sip:1001@127.0.0.1:5061;transport=tls"):
        assert await routed(target, 5_000) == (1, 0), target
