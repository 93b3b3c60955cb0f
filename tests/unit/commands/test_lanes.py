import asyncio
import contextlib
import subprocess
import sys

import pytest

from sipbridge.commands.lanes import Lanes
from sipbridge.commands.shared_locks import SharedPhoneLocks
from sipbridge.errors import PhoneTimeout, QueueFull
from sipbridge.sip.action_uri import OutgoingRequest, SipAnswer


def via(sender, request):
    """The send a lane runs: `request` through `sender` (built now, sent in its turn)."""
    return lambda: sender.send(request)


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
    lanes = Lanes(queue_limit=10, deadline=5)
    tasks = [
        asyncio.create_task(lanes.deliver(phone, via(sender, notify(f"{phone}-{n}"))))
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
    assert lanes.queued("A") == 0


async def test_full_queue_refuses_with_retry_after():
    sender = GatedSender()
    lanes = Lanes(queue_limit=2, deadline=3)
    first = asyncio.create_task(lanes.deliver("A", via(sender, notify("A-0"))))
    second = asyncio.create_task(lanes.deliver("A", via(sender, notify("A-1"))))
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFull) as info:
        await lanes.deliver("A", via(sender, notify("A-2")))
    assert info.value.retry_after == 3
    for gate in ("sip:A-0@127.0.0.1", "sip:A-1@127.0.0.1"):
        while gate not in sender.gates:
            await asyncio.sleep(0.001)
        sender.gates[gate].set()
    await asyncio.gather(first, second)


async def wait_sent(sender: GatedSender, uri: str) -> None:
    for _ in range(1000):
        if uri in sender.gates:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"{uri} was never sent")


async def test_a_command_past_its_deadline_holds_the_lane_until_its_answer():
    sender = GatedSender()
    lanes = Lanes(queue_limit=5, deadline=0.05)
    with pytest.raises(PhoneTimeout) as info:
        await lanes.deliver("A", via(sender, notify("A-0")))
    assert info.value.sent is True
    assert info.value.late is not None and not info.value.late.done()
    # The phone has not answered A-0: the next command waits, and runs out of time queued.
    with pytest.raises(PhoneTimeout) as queued:
        await lanes.deliver("A", via(sender, notify("A-1")))
    assert queued.value.sent is False
    assert sender.order == ["sip:A-0@127.0.0.1"]
    assert lanes.queued("A") == 1  # A-0's transaction still holds the lane
    sender.gates["sip:A-0@127.0.0.1"].set()
    third = asyncio.create_task(lanes.deliver("A", via(sender, notify("A-2"))))
    late = await info.value.late
    assert (late.status, late.from_wire) == (200, True)
    await wait_sent(sender, "sip:A-2@127.0.0.1")
    sender.gates["sip:A-2@127.0.0.1"].set()
    with contextlib.suppress(PhoneTimeout):
        await third
    assert sender.order == ["sip:A-0@127.0.0.1", "sip:A-2@127.0.0.1"]
    assert sender.max_in_flight == {"A": 1}
    await asyncio.sleep(0)
    assert lanes.queued("A") == 0


async def test_a_timeout_says_whether_the_command_left_the_queue():
    sender = GatedSender()
    lanes = Lanes(queue_limit=5, deadline=0.05)
    first = asyncio.create_task(lanes.deliver("A", via(sender, notify("A-0"))))
    second = asyncio.create_task(lanes.deliver("A", via(sender, notify("A-1"))))
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert all(isinstance(r, PhoneTimeout) for r in results)
    on_wire, queued = results
    assert isinstance(on_wire, PhoneTimeout) and isinstance(queued, PhoneTimeout)
    assert (on_wire.sent, queued.sent) == (True, False)
    assert queued.late is None
    assert sender.order == ["sip:A-0@127.0.0.1"]  # A-1 never left
    sender.gates["sip:A-0@127.0.0.1"].set()
    assert on_wire.late is not None
    await on_wire.late
    await asyncio.sleep(0)
    assert lanes.queued("A") == 0 and sender.in_flight["A"] == 0


async def test_a_cancelled_caller_leaves_its_command_holding_the_lane():
    sender = GatedSender()
    lanes = Lanes(queue_limit=5, deadline=5)
    first = asyncio.create_task(lanes.deliver("A", via(sender, notify("A-0"))))
    await wait_sent(sender, "sip:A-0@127.0.0.1")
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    second = asyncio.create_task(lanes.deliver("A", via(sender, notify("A-1"))))
    for _ in range(20):
        await asyncio.sleep(0.005)
    assert sender.order == ["sip:A-0@127.0.0.1"]
    sender.gates["sip:A-0@127.0.0.1"].set()
    await wait_sent(sender, "sip:A-1@127.0.0.1")
    sender.gates["sip:A-1@127.0.0.1"].set()
    delivery = await second
    assert delivery.answer.status == 200
    assert sender.max_in_flight == {"A": 1}


async def test_the_shared_lock_is_held_until_the_transaction_ends(tmp_path):
    """Another process may not take the phone while a timed-out command is still live."""
    locks = SharedPhoneLocks(tmp_path / "locks")
    sender = GatedSender()
    lanes = Lanes(queue_limit=5, deadline=0.05, shared_locks=locks)
    with pytest.raises(PhoneTimeout) as info:
        await lanes.deliver("A", via(sender, notify("A-0")))
    assert locked_elsewhere(tmp_path / "locks", "A")
    sender.gates["sip:A-0@127.0.0.1"].set()
    assert info.value.late is not None
    await info.value.late
    await asyncio.sleep(0)
    assert not locked_elsewhere(tmp_path / "locks", "A")
    locks.close()


def locked_elsewhere(path, phone_id: str) -> bool:
    """Ask a child process (POSIX locks are per process) whether it can take the lock."""
    code = (
        "import sys; from pathlib import Path; from sipbridge.commands.shared_locks import SharedPhoneLocks;"
        f"sys.exit(0 if SharedPhoneLocks(Path({str(path)!r})).try_acquire({phone_id!r}) else 3)"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=30, check=False)
    return done.returncode == 3


async def test_a_shorter_deadline_for_one_command_bounds_its_wait_only():
    # The PBX relay's deadline, under the PBX's Timer F: the lanes keep it for that command.
    gate = asyncio.Event()

    async def slow():
        await gate.wait()
        return "answered"

    lanes = Lanes(queue_limit=5, deadline=5)
    with pytest.raises(PhoneTimeout) as info:
        await lanes.deliver("A", slow, deadline=0.05)
    assert info.value.sent and "0.05 s" in info.value.detail
    gate.set()
    assert info.value.late is not None and (await info.value.late) == "answered"
    assert (await lanes.deliver("A", slow)).answer == "answered"


async def test_a_send_that_fails_before_it_starts_frees_the_lane():
    lanes = Lanes(queue_limit=1, deadline=1)

    def broken():
        raise RuntimeError("no sender")

    with pytest.raises(RuntimeError):
        await lanes.deliver("A", broken)
    assert lanes.queued("A") == 0

    async def fine():
        return "ok"

    assert (await lanes.deliver("A", fine)).answer == "ok"


async def test_a_full_queue_asks_to_retry_after_the_lanes_deadline_not_the_callers():
    gate = asyncio.Event()

    async def slow():
        await gate.wait()
        return "answered"

    lanes = Lanes(queue_limit=1, deadline=3)
    first = asyncio.create_task(lanes.deliver("A", slow))
    await asyncio.sleep(0)
    with pytest.raises(QueueFull) as info:
        await lanes.deliver("A", slow, deadline=0.05)
    assert info.value.retry_after == 3  # the queue drains at the lanes' pace
    gate.set()
    await first
