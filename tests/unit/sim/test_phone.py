import json

import pytest

from sipbridge.sim import SimPhone

JSON = "application/json"


def command(uri: str, **data: str) -> bytes:
    return json.dumps({"command-URI": f"/api/v1/callctrl/{uri}", "data": data}).encode()


@pytest.fixture
def phone():
    return SimPhone("1001")


def send(phone, body, event="ACTION-URI", content_type=JSON):
    return phone.handle_notify(event=event, content_type=content_type, body=body)


def test_hold_then_resume_changes_state(phone):
    call = phone.add_call()
    assert send(phone, command("holdCall", Ref=call.call_id)).status == 200
    assert call.state == "held"
    assert send(phone, command("resumeCall", Ref=call.call_id)).status == 200
    assert call.state == "connected"


def test_call_ids_look_like_a_phones(phone):
    call_id = phone.add_call().call_id
    left, host = call_id.split("@")
    assert host == "127.0.0.1"
    assert [len(part) for part in left.split("-")] == [8, 8, 8]


@pytest.mark.parametrize(
    ("event", "content_type", "body", "status"),
    [
        ("dialog", JSON, command("holdCall"), 489),
        ("ACTION-URI", "text/plain", command("holdCall"), 415),
        ("ACTION-URI", JSON, b"{not json", 400),
        ("ACTION-URI", JSON, b"[" + command("holdCall") + b"," + command("endCall") + b"]", 400),
        ("ACTION-URI", JSON, b'{"command-URI": "/api/v1/callctrl/holdCall", "x": 1}', 400),
        ("ACTION-URI", JSON, b" " * (20 * 1024 + 1), 413),
        ("ACTION-URI", JSON, command("explode"), 501),
    ],
)
def test_malformed_notifies_are_refused_and_change_nothing(
    phone, event, content_type, body, status
):
    call = phone.add_call()
    assert send(phone, body, event, content_type).status == status
    assert call.state == "connected"
    assert phone.received[-1].status == status


def test_unknown_call_is_404_with_poly_code(phone):
    verdict = send(phone, command("holdCall", Ref="nope@x"))
    assert (verdict.status, verdict.poly_code) == (404, 4007)


def test_resume_of_a_connected_call_is_not_allowed(phone):
    call = phone.add_call()
    verdict = send(phone, command("resumeCall", Ref=call.call_id))
    assert (verdict.status, verdict.poly_code) == (403, 4003)


def test_end_and_transfer_remove_the_call(phone):
    a, b = phone.add_call(), phone.add_call()
    assert send(phone, command("endCall", Ref=a.call_id)).status == 200
    assert send(phone, command("transferCall", Ref=b.call_id, TransferDest="1002")).status == 200
    assert phone.calls == {}
    assert phone.transfers == [(b.call_id, "1002")]


def test_warm_transfer_joins_a_to_b_and_both_leave(phone):
    a = phone.add_call(remote="sip:alice@x")
    b = phone.add_call(remote="sip:bob@x", state="held")
    assert (
        send(phone, command("warmTransfer", **{"Ref-A": a.call_id, "Ref-B": b.call_id})).status
        == 200
    )
    assert phone.calls == {}
    assert phone.transfers == [(a.call_id, "sip:bob@x")]


def test_dtmf_recorded_on_the_active_call(phone):
    phone.add_call(state="held")
    active = phone.add_call()
    assert send(phone, command("sendDTMF", Digits="12#")).status == 200
    assert active.dtmf == ["12#"]


def test_mute_twice_is_refused(phone):
    phone.add_call()
    assert send(phone, command("mute", state="1")).status == 200
    assert phone.muted
    assert send(phone, command("mute", state="1")).status == 403


def test_answer_holds_the_active_call(phone):
    active = phone.add_call()
    ringing = phone.add_call(state="ringing")
    assert send(phone, command("answerCall", Ref=ringing.call_id)).status == 200
    assert (active.state, ringing.state) == ("held", "connected")


def test_join_makes_a_conference(phone):
    a = phone.add_call()
    b = phone.add_call(state="held")
    assert send(phone, command("joinCalls")).status == 200
    assert a.conference == b.conference is not None
    assert (a.state, b.state) == ("connected", "connected")


def test_ignore_silences_the_ringer_and_keeps_the_call(phone):
    # Manual 002, IgnoreCall: unlike rejectCall the call is not ended.
    ringing = phone.add_call(state="ringing")
    assert send(phone, command("ignoreCall", Ref=ringing.call_id)).status == 200
    assert phone.calls[ringing.call_id] is ringing
    assert (ringing.state, ringing.silenced) == ("ringing", True)
    assert send(phone, command("answerCall", Ref=ringing.call_id)).status == 200
    assert ringing.state == "connected"


def test_reject_ends_the_ringing_call(phone):
    ringing = phone.add_call(state="ringing")
    assert send(phone, command("rejectCall", Ref=ringing.call_id)).status == 200
    assert phone.calls == {}


def test_join_without_a_held_call_is_4007_not_4003(phone):
    # Manual 002, JoinCalls lists 2000, 4000 and 4007 only.
    phone.add_call()
    verdict = send(phone, command("joinCalls"))
    assert verdict.poly_code == 4007
