"""The real gateway and the real pjsua2 UA against sipp, an independent SIP implementation."""

from __future__ import annotations

import json
import time

import pytest

from tests.helpers import SippPhone, free_port
from tests.integration.conftest import AUTH, DEADLINE, register

CALL_ID = "5f3c2a1b-9e8d7c6b-0a1b2c3d@127.0.0.1"


@pytest.fixture
def sipp(tmp_path):
    phones: list[SippPhone] = []

    def start(scenario: str, transport: str = "u1") -> SippPhone:
        phone = SippPhone(
            scenario=scenario, port=free_port(), workdir=tmp_path, transport=transport
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
