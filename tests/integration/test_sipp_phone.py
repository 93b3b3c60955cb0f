"""The real gateway and the real pjsua2 UA against sipp, an independent SIP implementation."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import pytest

from tests.helpers import SippPhone, free_port, wait_for, wire_log
from tests.integration.conftest import AUTH, DEADLINE, register

CALL_ID = "5f3c2a1b-9e8d7c6b-0a1b2c3d@127.0.0.1"


@pytest.fixture
def sipp(tmp_path):
    phones: list[SippPhone] = []

    def start(scenario: str, transport: str = "u1", calls: int = 1) -> SippPhone:
        phone = SippPhone(
            scenario=scenario, port=free_port(), workdir=tmp_path, transport=transport, calls=calls
        )
        phones.append(phone.start())
        return phone

    yield start
    for phone in phones:
        phone.kill()


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_hold_reaches_sipp_as_exactly_one_action_uri_notify(gateway, sipp, transport):
    phone = sipp("phone_ok.xml", transport)
    # Over TCP the contact has no transport parameter: the registered transport must be used.
    contact = phone.contact.split(";")[0]
    await register(
        gateway, "1001", contact, CALL_ID, transport="tcp" if transport == "t1" else "udp"
    )

    response = await gateway.post(f"/v1/calls/{CALL_ID}/hold", headers=AUTH)

    assert response.status == 200, await response.text()
    result = await response.json()
    assert (result["sip_status"], result["sip_reason"]) == (200, "OK")
    assert result["command_uri"] == "/api/v1/callctrl/holdCall"
    assert phone.finish() == 0, "sipp's own header checks failed"
    [notify] = phone.received
    assert notify.method == "NOTIFY"
    assert notify.uri.startswith(f"sip:1001@127.0.0.1:{phone.port}")
    assert notify.headers.get("Event") == "ACTION-URI"
    assert notify.headers.get("Content-Type") == "application/json"
    assert notify.headers.get("Contact") is not None
    body = json.loads(notify.body)
    assert body == {"command-URI": "/api/v1/callctrl/holdCall", "data": {"Ref": CALL_ID}}
    call = await (await gateway.get(f"/v1/calls/{CALL_ID}", headers=AUTH)).json()
    assert call["state"] == "held"


async def test_sipp_refusing_gives_502_with_its_status(gateway, sipp):
    phone = sipp("phone_forbidden.xml")
    await register(gateway, "1001", phone.contact, CALL_ID)

    response = await gateway.post(f"/v1/calls/{CALL_ID}/end", headers=AUTH)

    assert response.status == 502
    body = await response.json()
    assert (body["sip_status"], body["sip_reason"]) == (403, "Forbidden")
    assert body["call_id"] == CALL_ID and body["phone"] == "1001"
    assert phone.finish() == 0
    assert len(phone.received) == 1
    still = await gateway.get(f"/v1/calls/{CALL_ID}", headers=AUTH)
    assert (await still.json())["state"] == "connected"


async def test_sipp_silent_gives_504_by_the_deadline(gateway, sipp):
    phone = sipp("phone_silent.xml")
    await register(gateway, "1001", phone.contact, CALL_ID)

    started = time.monotonic()
    response = await gateway.post(f"/v1/calls/{CALL_ID}/hold", headers=AUTH)
    elapsed = time.monotonic() - started

    assert response.status == 504, await response.text()
    body = await response.json()
    assert body["phone"] == "1001"
    # The SIP transaction (Timer F = 2 s) gives up before the 3 s deadline: 504 either way,
    # and never later than the deadline.
    assert elapsed < DEADLINE + 0.5
    phone.kill()
    phone.finish()
    assert phone.received and all(r.method == "NOTIFY" for r in phone.received)


async def test_no_one_listening_over_tcp_is_502_unreachable(gateway):
    port = free_port()
    await register(gateway, "1001", f"sip:1001@127.0.0.1:{port};transport=tcp", CALL_ID)
    response = await gateway.post(f"/v1/calls/{CALL_ID}/hold", headers=AUTH)
    assert response.status == 502
    body = await response.json()
    assert body["type"].endswith("phone-unreachable")


async def test_a_late_answer_keeps_the_lane_and_is_recorded(gateway_factory, sipp):
    """Single flight stays exact past a deadline (issue #14, item 2).

    sipp answers every NOTIFY after 1.4 s, over TCP (no retransmissions during its pause).
    Deadline and Timer F are 2 s. A first command holds the phone for 1.4 s, so the hold
    queued behind it leaves at 1.4 s and is answered at 2.8 s: after its caller's deadline,
    before its Timer F (3.4 s). The next command, asked for at once, must leave only after
    that 200, and the late 200 must still put the call on hold and reach the command log.
    """
    gateway = await gateway_factory(command_deadline=2.0, sip_transaction_timeout=2.0)
    phone = sipp("phone_slow.xml", "t1", calls=3)
    await register(gateway, "1001", phone.contact.split(";")[0], CALL_ID, transport="tcp")

    first = asyncio.create_task(
        gateway.post(f"/v1/calls/{CALL_ID}/dtmf", json={"digits": "1"}, headers=AUTH)
    )
    await wait_for(lambda: _async(len(wire_log(phone.log_file)) >= 1), timeout=5)
    hold = await gateway.post(f"/v1/calls/{CALL_ID}/hold", headers=AUTH)
    body = await hold.json()
    assert hold.status == 504, body
    assert body["sent"] is True, body
    after = await gateway.post(f"/v1/calls/{CALL_ID}/dtmf", json={"digits": "2"}, headers=AUTH)
    assert (await first).status == 200

    async def late_outcome_logged() -> dict[str, Any] | None:
        page = await (await gateway.get("/v1/commands", headers=AUTH)).json()
        holds = [c for c in page["commands"] if c["command_uri"].endswith("holdCall")]
        return holds[0] if holds and holds[0]["late_outcome"] else None

    entry = await wait_for(late_outcome_logged, timeout=10)
    assert (entry["outcome"], entry["sent"]) == ("PhoneTimeout", True)
    assert (entry["late_outcome"], entry["late_status"]) == ("ok", 200)
    call = await (await gateway.get(f"/v1/calls/{CALL_ID}", headers=AUTH)).json()
    assert call["state"] == "held"
    assert after.status in (200, 504)  # its own fate depends on the phone's pace, not asserted

    assert phone.finish(timeout=15) == 0
    log = wire_log(phone.log_file)
    notifies = [m for m in log if m.direction == "received" and m.start_line.startswith("NOTIFY")]
    assert [json.loads(m.text.split("\n\n", 1)[1])["command-URI"] for m in notifies] == [
        "/api/v1/callctrl/sendDTMF",
        "/api/v1/callctrl/holdCall",
        "/api/v1/callctrl/sendDTMF",
    ]
    hold_id = notifies[1].call_id
    hold_answered = next(
        i for i, m in enumerate(log) if m.direction == "sent" and m.call_id == hold_id
    )
    assert log.index(notifies[2]) > hold_answered, "a NOTIFY left while the hold was unanswered"
    # Never two NOTIFYs unanswered at once: every receipt follows the previous one's answer.
    for earlier, later in itertools.pairwise(notifies):
        answered = next(
            i for i, m in enumerate(log) if m.direction == "sent" and m.call_id == earlier.call_id
        )
        assert log.index(later) > answered


async def _async(value: Any) -> Any:
    return value


async def test_a_burst_at_a_slow_phone_never_overlaps_and_says_what_left(gateway_factory, sipp):
    """Four commands at once to a phone that answers after 1.4 s, deadline and Timer F 2 s:
    the first is answered in time, the second leaves when the first is answered and is late
    (504, sent), the last two never leave the queue (504, not sent) -- and the phone never
    has two NOTIFYs unanswered."""
    gateway = await gateway_factory(command_deadline=2.0, sip_transaction_timeout=2.0)
    phone = sipp("phone_slow.xml", "t1", calls=2)
    await register(gateway, "1001", phone.contact.split(";")[0], CALL_ID, transport="tcp")

    async def dtmf(digit: str) -> tuple[int, dict[str, Any]]:
        response = await gateway.post(
            f"/v1/calls/{CALL_ID}/dtmf", json={"digits": digit}, headers=AUTH
        )
        return response.status, await response.json()

    first = asyncio.create_task(dtmf("1"))
    await wait_for(lambda: _async(len(wire_log(phone.log_file)) >= 1), timeout=5)
    rest = await asyncio.gather(dtmf("2"), dtmf("3"), dtmf("4"))
    assert (await first)[0] == 200
    assert [(status, body.get("sent")) for status, body in rest] == [
        (504, True),
        (504, False),
        (504, False),
    ], rest

    assert phone.finish(timeout=15) == 0
    log = wire_log(phone.log_file)
    assert [m.direction for m in log] == ["received", "sent", "received", "sent"]
    assert log[0].call_id == log[1].call_id and log[2].call_id == log[3].call_id


async def test_sipp_busy_486_gives_502_and_the_call_stays_as_it_was(gateway, sipp):
    # Issue #23 item 4: a real phone's 486 must never read as success ("held").
    phone = sipp("phone_busy.xml")
    await register(gateway, "1001", phone.contact, CALL_ID)

    response = await gateway.post(f"/v1/calls/{CALL_ID}/hold", headers=AUTH)

    assert response.status == 502, await response.text()
    body = await response.json()
    assert (body["sip_status"], body["sip_reason"]) == (486, "Busy Here")
    assert phone.finish() == 0
    assert len(phone.received) == 1
    still = await gateway.get(f"/v1/calls/{CALL_ID}", headers=AUTH)
    assert (await still.json())["state"] == "connected"
