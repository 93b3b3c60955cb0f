"""The dialog-subscription lifecycle with a fake SIP sender (no sockets, an injected clock)."""

import asyncio

import pytest

from sipbridge.sip.action_uri import OutgoingRequest, SipAnswer
from sipbridge.tracker.models import Phone
from sipbridge.tracker.subscriptions import (
    DialogSubscriptions,
    Subscription,
    SubscriptionStateError,
)


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


class Sender:
    local_contact = "sip:sipbridge@127.0.0.1:5070"

    def __init__(self) -> None:
        self.sent: list[OutgoingRequest] = []
        self.status = 200
        self.expires = "300"

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    async def send(self, request: OutgoingRequest) -> SipAnswer:
        self.sent.append(request)
        raw = f"SIP/2.0 {self.status} X\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 SUBSCRIBE\r\nExpires: {self.expires}\r\nContent-Length: 0\r\n\r\n"
        return SipAnswer(status=self.status, reason="X", from_wire=True, raw=raw)


def phone(contact="sip:1001@127.0.0.1:5090"):
    return Phone(id="1001", aor="sip:1001@h", contact=contact, transport="udp",
                 user_agent=None, registered_until=9e9, updated_at=0)


async def settle(subs, sender, count):
    for _ in range(200):
        if len(sender.sent) >= count and all(s.state != "pending" for s in subs._by_phone.values()):
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{len(sender.sent)} sent")


@pytest.fixture
async def world():
    clock, sender = Clock(), Sender()
    subs = DialogSubscriptions(sender, listener_host="127.0.0.1", listener_port=lambda: 5062,
                               expires=600, retry_after=60, clock=clock)
    await subs.start()
    yield clock, sender, subs
    await subs.stop()


async def test_subscribe_names_the_listener_and_a_token_the_notify_can_find(world):
    clock, sender, subs = world
    subs.phone_registered(phone())
    await settle(subs, sender, 1)
    [request] = sender.sent
    assert request.method == "SUBSCRIBE" and request.target_uri == "sip:1001@127.0.0.1:5090"
    headers = dict(request.headers)
    assert headers["Event"] == "dialog" and headers["Expires"] == "600"
    token = headers["Contact"].split(":")[1].split("@")[0]
    assert token.startswith("sub-")
    found = subs.lookup(token)
    assert found is not None and found.phone_id == "1001" and found.state == "active"
    assert found.expires_at == clock.now + 300  # the 200 granted less than asked
    assert subs.lookup("sub-unknown") is None


async def test_refreshed_before_expiry_and_redone_on_a_new_contact(world):
    clock, sender, subs = world
    subs.phone_registered(phone())
    await settle(subs, sender, 1)
    subs.phone_registered(phone())  # same contact: nothing new
    clock.now += 200
    subs._wakeup.set()
    await asyncio.sleep(0.05)
    assert len(sender.sent) == 1
    clock.now += 50  # past 80% of 300 s
    subs._wakeup.set()
    await settle(subs, sender, 2)
    old_token = dict(sender.sent[0].headers)["Contact"].split(":")[1].split("@")[0]
    subs.phone_registered(phone("sip:1001@127.0.0.1:6000"))
    await settle(subs, sender, 3)
    assert sender.sent[-1].target_uri == "sip:1001@127.0.0.1:6000"
    assert subs.lookup(old_token) is None  # the old contact's subscriptions are forgotten


async def test_a_failed_subscribe_is_retried_later_and_a_gone_phone_forgotten(world):
    clock, sender, subs = world
    sender.status = 489
    subs.phone_registered(phone())
    await settle(subs, sender, 1)
    assert subs.active() == []
    clock.now += 30
    subs._wakeup.set()
    await asyncio.sleep(0.05)
    assert len(sender.sent) == 1  # not before retry_after
    sender.status = 200
    clock.now += 31
    subs._wakeup.set()
    await settle(subs, sender, 2)
    assert len(subs.active()) == 1
    subs.phone_gone("1001")
    assert len(subs) == 0 and subs.active() == []


def test_impossible_transitions_are_named():
    subscription = Subscription(phone_id="1001", contact="sip:1001@h", transport="udp")
    with pytest.raises(SubscriptionStateError):
        subscription.move("accepted")  # due → accepted skips sending
