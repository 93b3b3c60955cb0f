"""The inbound router: ACTION-URI NOTIFYs to the relay, everything else to the tracker's feed."""

from __future__ import annotations

import pytest

from sipbridge.pbx.relay import ActionUriRelay
from sipbridge.pbx.router import InboundRouter
from sipbridge.sip.listener import Reply, Source
from sipbridge.sip.message import SipRequest, parse_message
from sipbridge.sip.sender import FakeSender
from sipbridge.tracker import TrackerStore
from sipbridge.tracker.sip_feed import SipFeed
from tests.helpers import command_path

PBX = Source(host="127.0.0.1", port=5060, transport="udp")


@pytest.fixture
def store(tmp_path):
    store = TrackerStore(tmp_path / "t.sqlite3")
    store.register_phone(
        "1001", contact="sip:1001@10.0.0.5:5060", transport="udp", expires=600, aor="sip:1001@h"
    )
    yield store
    store.close()


def notify(event: str) -> SipRequest:
    body = b'{"command-URI":"/api/v1/callctrl/endCall","data":{"Ref":"c@h"}}'
    raw = (
        "NOTIFY sip:1001@sipbridge SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-r1\r\n"
        "From: <sip:pbx@h>;tag=1\r\nTo: <sip:1001@sipbridge>\r\nCall-ID: r1@h\r\n"
        f"CSeq: 1 NOTIFY\r\nEvent: {event}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    request = parse_message(raw)
    assert isinstance(request, SipRequest)
    return request


async def test_an_action_uri_notify_goes_to_the_relay_and_reaches_the_phone(store):
    sender = FakeSender()
    router = InboundRouter(
        SipFeed(store, None), ActionUriRelay(command_path(store, sender), deadline=2.0)
    )
    outcome = router.handle(notify("ACTION-URI"), PBX)
    assert not isinstance(outcome, Reply)  # the relay answers when the phone has
    reply = await outcome
    assert reply.status == 200
    [sent] = sender.sent
    assert sent.target_uri == "sip:1001@10.0.0.5:5060" and b"endCall" in sent.body


def test_without_a_relay_action_uri_is_an_unknown_event(store):
    reply = InboundRouter(SipFeed(store, None)).handle(notify("ACTION-URI"), PBX)
    assert isinstance(reply, Reply) and reply.status == 489
    assert dict(reply.headers)["Allow-Events"] == "dialog, reg"


def test_an_unknown_event_names_every_package_taken(store):
    router = InboundRouter(
        SipFeed(store, None), ActionUriRelay(command_path(store, FakeSender()), deadline=2.0)
    )
    reply = router.handle(notify("presence"), PBX)
    assert isinstance(reply, Reply) and reply.status == 489
    assert dict(reply.headers)["Allow-Events"] == "dialog, reg, ACTION-URI"


def test_the_feed_still_answers_its_own_events(store):
    router = InboundRouter(SipFeed(store, None))
    reply = router.handle(notify("dialog"), PBX)
    assert isinstance(reply, Reply) and reply.status == 481  # no such subscription of ours
