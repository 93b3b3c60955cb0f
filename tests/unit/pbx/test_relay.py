"""The PBX relay over a fake sender: the phone's answer as it came, refusals, the body's rules,
and no answer before the command's log entry committed."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3

import pytest

from sipbridge import catalog, errors
from sipbridge.pbx.relay import ActionUriRelay, parse_body, refusal
from sipbridge.sip.action_uri import OutgoingRequest, SipAnswer
from sipbridge.sip.listener import Reply, Source
from sipbridge.sip.message import SipRequest, parse_message
from sipbridge.sip.sender import FakeSender
from sipbridge.tracker import TrackerStore
from tests.helpers import command_path

CALL_ID = "0a1b2c3d-4e5f6071@10.0.0.5"
PBX = Source(host="127.0.0.1", port=5060, transport="udp")


class Phone:
    def __init__(self) -> None:
        self.status, self.reason = 200, "OK"

    def __call__(self, request: OutgoingRequest) -> SipAnswer:
        return SipAnswer(status=self.status, reason=self.reason, from_wire=True)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "t.sqlite3"


@pytest.fixture
def store(path):
    store = TrackerStore(path)
    store.register_phone(
        "1001", contact="sip:1001@10.0.0.5:5060", transport="udp", expires=600, aor="sip:1001@h"
    )
    store.record_call(CALL_ID, phone_id="1001", state="connected")
    yield store
    store.close()


@pytest.fixture
def peer(path, store):
    """Another connection to the same file: it sees committed rows only."""
    db = sqlite3.connect(path, isolation_level=None)
    yield db
    db.close()


@pytest.fixture
def phone():
    return Phone()


@pytest.fixture
def sender(phone):
    return FakeSender(phone)


@pytest.fixture
def relay(store, sender):
    return ActionUriRelay(command_path(store, sender), deadline=3.0)


def notify(body: bytes | str, *, uri="sip:1001@sipbridge", content_type="application/json"):
    raw = body.encode() if isinstance(body, str) else body
    lines = [
        f"NOTIFY {uri} SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-pbx1",
        "From: <sip:pbx@127.0.0.1>;tag=p1",
        "To: <sip:1001@sipbridge>",
        "Call-ID: relay-1@127.0.0.1",
        "CSeq: 1 NOTIFY",
        "Max-Forwards: 70",
        "Event: ACTION-URI",
        *([f"Content-Type: {content_type}"] if content_type else []),
        f"Content-Length: {len(raw)}",
    ]
    request = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode() + raw)
    assert isinstance(request, SipRequest)
    return request


def hold(ref: str = CALL_ID) -> str:
    return json.dumps({"command-URI": "/api/v1/callctrl/holdCall", "data": {"Ref": ref}})


def warning_of(reply: Reply) -> str:
    return dict(reply.headers).get("Warning", "")


def logged(peer) -> list[tuple[str, int | None]]:
    return list(peer.execute("SELECT outcome, status FROM commands ORDER BY id"))


# -- the phone's answer goes back as it came --------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"), [(200, "OK"), (202, "Accepted"), (204, "No Content Here")]
)
async def test_the_phones_2xx_reaches_the_pbx_with_its_own_reason(relay, phone, status, reason):
    phone.status, phone.reason = status, reason
    reply = await relay.relay(notify(hold()), PBX)
    assert (reply.status, reply.reason) == (status, reason)


async def test_the_phones_refusal_reaches_the_pbx_as_it_was(relay, phone, peer):
    phone.status, phone.reason = 486, "Busy Here"
    reply = await relay.relay(notify(hold()), PBX)
    assert (reply.status, reply.reason) == (486, "Busy Here")
    assert "486" in warning_of(reply)
    assert logged(peer) == [("PhoneRejected", 486)]


# -- Call-IDs with CR/LF: refused for the CR/LF, not for a space --------------------------------


async def test_a_ref_with_cr_lf_and_no_space_is_refused_and_nothing_is_sent(relay, sender):
    reply = await relay.relay(notify(hold("abc\r\nX:y")), PBX)
    assert reply.status == 400
    assert "Ref" in warning_of(reply)
    # Addressed to sipbridge itself the Ref has to find the phone: it finds none.
    reply = await relay.relay(notify(hold("abc\r\nX:y"), uri="sip:sipbridge@127.0.0.1"), PBX)
    assert 400 <= reply.status < 500
    assert sender.sent == []


# -- the body's rules ---------------------------------------------------------------------------


def padded(size: int) -> bytes:
    """A one-command JSON body of exactly `size` bytes."""
    head = '{"command-URI": "/api/v1/callctrl/holdCall", "data": {"Ref": "' + CALL_ID + '"}}'
    body = head + " " * (size - len(head))
    assert len(body) == size
    return body.encode()


def test_a_body_of_exactly_20_kb_is_taken_one_byte_more_is_413():
    uri, data = parse_body(notify(padded(catalog.MAX_BODY_BYTES)))
    assert (uri, data) == ("/api/v1/callctrl/holdCall", {"Ref": CALL_ID})
    with pytest.raises(errors.PayloadTooLarge):
        parse_body(notify(padded(catalog.MAX_BODY_BYTES + 1)))


async def test_an_oversized_body_is_413_and_reaches_no_phone(relay, sender):
    reply = await relay.relay(notify(padded(catalog.MAX_BODY_BYTES + 1)), PBX)
    assert (reply.status, reply.reason) == (413, "Request Entity Too Large")
    assert sender.sent == []


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (hold(), "text/plain", 415),
        ("{nope", "application/json", 400),
        ('{"command-URI": "x", "data": {}, "extra": 1}', "application/json", 400),
        ('{"command-URI": 1}', "application/json", 400),
        ('{"command-URI": "/api/v1/callctrl/nothing", "data": {}}', "application/json", 400),
    ],
)
async def test_bad_bodies_are_refused_with_their_status(relay, sender, body, content_type, status):
    reply = await relay.relay(notify(body, content_type=content_type), PBX)
    assert reply.status == status, warning_of(reply)
    assert warning_of(reply).startswith('399 sipbridge "')
    assert sender.sent == []


# -- which error is which SIP status ------------------------------------------------------------


def one(cls: type[errors.SipBridgeError]) -> errors.SipBridgeError:
    if issubclass(cls, errors.InvalidInput):
        return cls.one("field", "why")
    if issubclass(cls, errors.QueueFull):
        return cls("why", retry_after=2)
    if issubclass(cls, errors.PhoneRefused):
        return cls("why", http_status=403, poly_status=4003, poly_meaning="m")
    if cls is errors.PhoneTimeout:
        return cls("why", sent=True)
    return cls("why")


# Written out, not read from SIP_STATUS: a changed status there must fail here.
EXPECTED_SIP_STATUS = [
    (errors.MalformedBody, 400, "Bad Request"),
    (errors.UnsupportedMediaType, 415, "Unsupported Media Type"),
    (errors.PayloadTooLarge, 413, "Request Entity Too Large"),
    (errors.Unauthorized, 403, "Forbidden"),
    (errors.UnknownPhone, 404, "Not Found"),
    (errors.UnknownCall, 404, "Not Found"),
    (errors.NotFound, 404, "Not Found"),
    (errors.NotSupportedByPhone, 488, "Not Acceptable Here"),
    (errors.TransportUnavailable, 488, "Not Acceptable Here"),
    (errors.InvalidInput, 400, "Bad Request"),
    (errors.QueueFull, 480, "Temporarily Unavailable"),
    (errors.PhoneBusy, 486, "Busy Here"),
    (errors.ContactResolutionTimeout, 504, "Server Time-out"),
    (errors.ContactNotAllowed, 403, "Forbidden"),
    (errors.ContactUnresolvable, 480, "Temporarily Unavailable"),
    (errors.PhoneTimeout, 504, "Server Time-out"),
    (errors.PhoneUnreachable, 480, "Temporarily Unavailable"),
    (errors.PhoneAuthFailed, 403, "Forbidden"),
    (errors.PhoneRefused, 502, "Bad Gateway"),
    (errors.StoreError, 500, "Server Internal Error"),
]


@pytest.mark.parametrize(("cls", "status", "reason"), EXPECTED_SIP_STATUS)
def test_each_error_class_has_its_sip_status_and_a_warning(cls, status, reason):
    reply = refusal(one(cls))
    assert (reply.status, reply.reason) == (status, reason)
    assert warning_of(reply).startswith('399 sipbridge "') and "why" in warning_of(reply)
    # Retry-After exactly where the error says when to retry (RFC 3261 §20.33).
    assert ("Retry-After" in dict(reply.headers)) == (one(cls).retry_after is not None)
    # RFC 4320 §4.2: never 408 to a non-INVITE; one phone's trouble is never a 503 (§16.7).
    assert reply.status not in (408, 503)


def test_an_error_outside_the_table_is_500():
    reply = refusal(errors.SipBridgeError("why"))
    assert (reply.status, reply.reason) == (500, "Server Internal Error")


def test_queue_full_says_when_to_retry_and_warnings_cannot_break_the_header():
    reply = refusal(errors.QueueFull('queue "full"\r\nX: y', retry_after=3))
    headers = dict(reply.headers)
    assert headers["Retry-After"] == "3"
    assert "\r" not in headers["Warning"] and "\n" not in headers["Warning"]
    assert headers["Warning"].count('"') == 2


def test_a_phone_rejection_goes_back_with_the_phones_status_and_reason():
    exc = errors.PhoneRejected("the phone answered 603", sip_status=603, sip_reason="Decline")
    reply = refusal(exc)
    assert (reply.status, reply.reason) == (603, "Decline")


# -- answered only after the command's log entry committed --------------------------------------


async def test_the_reply_comes_only_after_the_log_entry_committed(relay, peer):
    reply = await relay.relay(notify(hold()), PBX)
    # Nothing ran between the relay's return and this line: what the peer sees was committed
    # before the PBX could be answered.
    assert reply.status == 200
    assert logged(peer) == [("ok", 200)]


async def test_a_refusal_comes_only_after_its_log_entry_committed(relay, phone, peer):
    phone.status, phone.reason = 480, "Temporarily Unavailable"
    reply = await relay.relay(notify(hold()), PBX)
    assert reply.status == 480
    assert logged(peer) == [("PhoneRejected", 480)]


async def test_a_failed_log_write_keeps_the_phones_answer_and_is_logged(
    relay, store, peer, caplog, monkeypatch
):
    # The PBX is told what the phone did, not that an audit row exists (docs/testing.md).
    def broken(entry):
        raise errors.StoreError("disk I/O error")

    monkeypatch.setattr(store, "log_command", broken)
    with caplog.at_level(logging.ERROR, logger="sipbridge.commands.journal"):
        reply = await relay.relay(notify(hold()), PBX)
    assert reply.status == 200
    assert "command log write failed: disk I/O error" in caplog.text
    assert logged(peer) == []


# -- issue #23: what mutation testing found unguarded --------------------------------------------


async def test_addressed_to_sipbridge_the_ref_finds_the_phone(relay, sender):
    for key in ("Ref", "Ref-A"):
        body = json.dumps({"command-URI": "/api/v1/callctrl/holdCall", "data": {key: CALL_ID}})
        if key == "Ref-A":
            body = json.dumps(
                {
                    "command-URI": "/api/v1/callctrl/warmTransfer",
                    "data": {"Ref-A": CALL_ID, "Ref-B": "b@h"},
                }
            )
        reply = await relay.relay(notify(body, uri="sip:sipbridge@127.0.0.1"), PBX)
        assert reply.status == 200, warning_of(reply)
        assert sender.sent[-1].target_uri == "sip:1001@10.0.0.5:5060"
    assert len(sender.sent) == 2


@pytest.mark.parametrize(
    ("uri", "data", "words"),
    [
        ("sip:sipbridge@127.0.0.1", {}, "no registered phone 'sipbridge' and no Ref / Ref-A"),
        ("sip:sipbridge@127.0.0.1", {"Ref": 5}, "no Ref / Ref-A in the body"),
        ("sip:sipbridge@127.0.0.1", {"Ref": ""}, "no Ref / Ref-A in the body"),
        ("sip:9999@127.0.0.1", {}, "no registered phone '9999' and no Ref / Ref-A"),
        ("sip:127.0.0.1", {}, "no Ref / Ref-A in the body to find the phone by"),
    ],
)
async def test_without_a_phone_or_a_ref_it_is_404_saying_why(relay, sender, uri, data, words):
    body = json.dumps({"command-URI": "/api/v1/callctrl/joinCalls", "data": data})
    reply = await relay.relay(notify(body, uri=uri), PBX)
    assert (reply.status, reply.reason) == (404, "Not Found")
    assert words in warning_of(reply)
    assert sender.sent == []


async def test_a_ref_to_an_unknown_call_is_404(relay, sender):
    reply = await relay.relay(notify(hold("nobody@h"), uri="sip:sipbridge@127.0.0.1"), PBX)
    assert reply.status == 404 and sender.sent == []


async def test_a_command_without_data_is_taken(relay, sender):
    reply = await relay.relay(notify('{"command-URI": "/api/v1/callctrl/joinCalls"}'), PBX)
    assert reply.status == 200, warning_of(reply)
    assert json.loads(sender.sent[0].body) == {
        "command-URI": "/api/v1/callctrl/joinCalls",
        "data": {},
    }


def test_a_missing_content_type_is_415_saying_absent():
    request = notify(hold(), content_type="")
    with pytest.raises(errors.UnsupportedMediaType) as info:
        parse_body(request)
    assert info.value.detail == "the body must be application/json, not absent"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ("[1]", "the body must hold exactly one command"),
        ('{"command-URI": "x", "data": {}, "more": 1}', "the body must hold exactly one command"),
        ('{"data": {}}', 'the body needs "command-URI" (a string) and "data" (an object)'),
        (
            '{"command-URI": "x", "data": []}',
            'the body needs "command-URI" (a string) and "data" (an object)',
        ),
    ],
)
def test_malformed_bodies_say_what_is_wrong(body, detail):
    with pytest.raises(errors.MalformedBody) as info:
        parse_body(notify(body))
    assert info.value.detail == detail


async def test_no_answer_within_the_relays_deadline_is_504_never_408(store):
    slow = FakeSender(delay=0.3)
    relay = ActionUriRelay(command_path(store, slow, deadline=10.0), deadline=0.05)
    reply = await relay.relay(notify(hold()), PBX)
    # RFC 4320 §4.2: no 408 to a non-INVITE.
    assert (reply.status, reply.reason) == (504, "Server Time-out")
    assert warning_of(reply).startswith(
        "399 sipbridge \"no final answer from phone '1001' within 0.05 s; the command was sent"
    )
    # The phone's late 200 still ends the story: written onto the entry (the relay's deadline
    # is the lanes' for this command, not a cancellation that would lose the answer).
    [entry] = store.command_log()
    assert (entry.outcome, entry.sent, entry.late_outcome) == ("PhoneTimeout", True, None)
    await asyncio.sleep(0.5)
    [entry] = store.command_log()
    assert (entry.late_outcome, entry.late_status) == ("ok", 200)


def test_a_command_delivered_over_http_is_200_saying_so():
    from sipbridge.commands import CommandResult
    from sipbridge.pbx.relay import _success

    reply = _success(
        CommandResult(
            phone="1001",
            call_id=None,
            command_uri="/api/v1/callctrl/holdCall",
            transport="http",
            sip_status=None,
            sip_reason=None,
            latency_ms=1.0,
            http_status=200,
            poly_status=2000,
        )
    )
    assert (reply.status, reply.reason) == (200, "OK")
    assert reply.headers == (("Warning", '399 sipbridge "delivered over HTTP; Poly status 2000"'),)


def test_a_2xx_without_a_reason_is_ok():
    from sipbridge.commands import CommandResult
    from sipbridge.pbx.relay import _success

    result = CommandResult(
        phone="1001",
        call_id=None,
        command_uri="x",
        transport="sip",
        sip_status=202,
        sip_reason=None,
        latency_ms=1.0,
    )
    assert (_success(result).status, _success(result).reason) == (202, "OK")


def test_a_warning_is_cut_to_200_characters():
    from sipbridge.pbx.relay import warning

    name, value = warning("x" * 300 + "\r\n")
    assert name == "Warning" and value == '399 sipbridge "' + "x" * 200 + '"'
    assert warning("a\r\nb")[1] == '399 sipbridge "a  b"'
