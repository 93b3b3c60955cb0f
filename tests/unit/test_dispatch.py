import asyncio

import pytest

from sipbridge.dispatch import Dispatcher
from sipbridge.errors import PhoneTimeout, QueueFull
from sipbridge.sip.action_uri import OutgoingRequest, SipAnswer


def notify(tag: str) -> OutgoingRequest:
    return OutgoingRequest(
        target_uri=f"sip:{tag}@127.0.0.1", headers=(), content_type="application/json", body=b"{}"
    )


class GatedSender:
    """Answers only when the test releases a request; records concurrency per phone."""

    local_contact = "sip:sipbridge@127.0.0.1"

    def __init__(self) -> None:
        self.order: list[str] = []
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        self.gates: dict[str, asyncio.Event] = {}

    async def send(self, request: OutgoingRequest) -> SipAnswer:
        phone = request.target_uri.split(":")[1].split("-")[0]
        self.order.append(request.target_uri)
        self.in_flight[phone] = self.in_flight.get(phone, 0) + 1
        self.max_in_flight[phone] = max(self.max_in_flight.get(phone, 0), self.in_flight[phone])
        gate = self.gates.setdefault(request.target_uri, asyncio.Event())
        try:
            await gate.wait()
        finally:
            self.in_flight[phone] -= 1
        return SipAnswer(status=200, reason="OK", from_wire=True)


async def test_one_in_flight_per_phone_in_fifo_order_and_phones_in_parallel():
    sender = GatedSender()
    dispatcher = Dispatcher(sender, queue_limit=10, deadline=5)
    tasks = [
        asyncio.create_task(dispatcher.deliver(phone, notify(f"{phone}-{n}")))
        for n in range(3)
        for phone in ("A", "B")
    ]
    await asyncio.sleep(0.01)
    # A-0 and B-0 are on the wire together; nothing else yet.
    assert sorted(sender.order) == ["sip:A-0@127.0.0.1", "sip:B-0@127.0.0.1"]
    for n in range(3):
        for phone in ("A", "B"):
            while f"sip:{phone}-{n}@127.0.0.1" not in sender.gates:
                await asyncio.sleep(0.001)
            sender.gates[f"sip:{phone}-{n}@127.0.0.1"].set()
    await asyncio.gather(*tasks)
    assert sender.max_in_flight == {"A": 1, "B": 1}
    assert [u for u in sender.order if "A-" in u] == [f"sip:A-{n}@127.0.0.1" for n in range(3)]
    assert dispatcher.queued("A") == 0


async def test_full_queue_refuses_with_retry_after():
    sender = GatedSender()
    dispatcher = Dispatcher(sender, queue_limit=2, deadline=3)
    first = asyncio.create_task(dispatcher.deliver("A", notify("A-0")))
    second = asyncio.create_task(dispatcher.deliver("A", notify("A-1")))
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFull) as info:
        await dispatcher.deliver("A", notify("A-2"))
    assert info.value.retry_after == 3
    for gate in ("sip:A-0@127.0.0.1", "sip:A-1@127.0.0.1"):
        while gate not in sender.gates:
            await asyncio.sleep(0.001)
        sender.gates[gate].set()
    await asyncio.gather(first, second)


async def test_deadline_covers_waiting_and_frees_the_lane():
    sender = GatedSender()
    dispatcher = Dispatcher(sender, queue_limit=5, deadline=0.05)
    with pytest.raises(PhoneTimeout):
        await dispatcher.deliver("A", notify("A-0"))
    assert dispatcher.queued("A") == 0
    assert sender.in_flight["A"] == 0
