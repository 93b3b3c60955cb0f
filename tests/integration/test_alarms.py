"""The device API's alarms against a running gateway: the manual's cursors walked both ways,
an unreachable phone (sipp) alarmed and cleared, history kept over a restart, a bind failure."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import encode_basic_auth, web

from sipbridge.api import create_app, keys
from sipbridge.errors import StartupError
from sipbridge.tracker.alarm_log import Alarm
from tests.certs import make_authority
from tests.helpers import SippPhone, free_port
from tests.integration.conftest import AUTH, Borrowed, gateway_settings, register

PASSWORD = "alarm-test-password-1"
BASIC = {"Authorization": encode_basic_auth("admin", PASSWORD)}
CALL_ID = "alarm-call-1@127.0.0.1"


def alarm(n: int) -> Alarm:
    return Alarm(key=f"test:{n}", severity="minor", source="test", description=f"test alarm {n}")


async def get_json(client, path: str, status: int = 200):
    response = await client.get(path, headers=BASIC)
    assert response.status == status, await response.text()
    return await response.json() if status != 204 else None


async def test_active_alarms_walked_forwards_and_backwards_in_pages_of_three(gateway_factory):
    client = await gateway_factory(admin_password=PASSWORD)
    assert await get_json(client, "/api/v1/alarms/active", 204) is None
    await get_json(client, "/api/v1/alarms/active/lastChange", 404)
    alarms = client.app[keys.ALARM_LOG]
    for n in range(7):
        alarms.raise_alarm(alarm(n))

    folder = await get_json(client, "/api/v1/alarms")
    assert [item["url"] for item in folder["items"]] == [
        "/api/v1/alarms/active",
        "/api/v1/alarms/history",
    ]
    pages, path = [], "/api/v1/alarms/active?limit=3"
    for _ in range(3):
        page = await get_json(client, path)
        pages.append(page)
        path = f"/api/v1/alarms/active?limit=3&after={page['cursor']['after']}"
    assert [[a["id"] for a in p["alarms"]] for p in pages] == [
        ["1", "2", "3"],
        ["4", "5", "6"],
        ["7"],
    ]
    assert [p["cursor"] for p in pages] == [
        {"after": "3", "before": "-1"},
        {"after": "6", "before": "4"},
        {"after": "-1", "before": "7"},
    ]
    assert pages[0]["alarms"][0] == {
        "id": "1",
        "description": "test alarm 0",
        "url": "/api/v1/alarms/active/1",
    }
    # Past the end: after the last id, and the "-1" cursor itself.
    await get_json(client, "/api/v1/alarms/active?limit=3&after=7", 204)
    await get_json(client, "/api/v1/alarms/active?limit=3&after=-1", 204)
    back = await get_json(client, "/api/v1/alarms/active?limit=3&before=7")
    assert [a["id"] for a in back["alarms"]] == ["4", "5", "6"]
    start = await get_json(
        client, f"/api/v1/alarms/active?limit=3&before={back['cursor']['before']}"
    )
    assert [a["id"] for a in start["alarms"]] == ["1", "2", "3"]
    assert start["cursor"] == {"after": "3", "before": "-1"}
    await get_json(client, "/api/v1/alarms/active?limit=3&before=1", 204)

    one = await get_json(client, "/api/v1/alarms/active/2")
    assert one["severity"] == "minor" and one["source"] == "test"
    assert one["url"] == "/api/v1/alarms/active/2" and one["date"][:2] == "20"
    history = await get_json(client, "/api/v1/alarms/history?limit=20")
    assert history["alarms"][0]["url"] == "/api/v1/alarms/history/1"
    assert history["cursor"] == {"after": "-1", "before": "-1"}
    assert "lastChange" in await get_json(client, "/api/v1/alarms/active/lastChange")
    await get_json(client, "/api/v1/alarms/active/99", 404)
    await get_json(client, "/api/v1/alarms/history/99", 404)


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=1001", "limit=x", "after=abc", "before=1.5", "after=1&before=3",
     "after=-2", "limit=99999999999999999999999"],
)  # fmt: skip
async def test_bad_parameters_are_a_problem_not_a_crash(gateway_factory, query):
    client = await gateway_factory(admin_password=PASSWORD)
    response = await client.get(f"/api/v1/alarms/history?{query}", headers=BASIC)
    assert response.status == 422, await response.text()
    assert response.content_type == "application/problem+json"


async def test_a_phone_that_stops_answering_is_alarmed_and_cleared_when_it_answers(
    gateway_factory, tmp_path
):
    client = await gateway_factory(admin_password=PASSWORD, alarm_unreachable_after=2)
    port = free_port()
    phone = SippPhone(scenario="phone_ok.xml", port=port, workdir=tmp_path).start()
    try:
        await register(client, "1001", phone.contact, CALL_ID)
        response = await client.post(f"/v1/calls/{CALL_ID}/hold", headers=AUTH)
        assert response.status == 200, await response.text()
        assert phone.finish() == 0  # sipp answered its one NOTIFY and left: nobody answers now

        for _ in range(2):
            response = await client.post(f"/v1/calls/{CALL_ID}/resume", headers=AUTH)
            assert response.status in (502, 504), await response.text()
        active = await get_json(client, "/api/v1/alarms/active")
        [item] = active["alarms"]
        assert item["description"] == "phone 1001 unreachable: 2 consecutive timeouts"
        detail = await get_json(client, item["url"])
        assert (detail["severity"], detail["source"]) == ("major", "phone:1001")

        phone = SippPhone(scenario="phone_ok.xml", port=port, workdir=tmp_path).start()
        response = await client.post(f"/v1/calls/{CALL_ID}/resume", headers=AUTH)
        assert response.status == 200, await response.text()
        await get_json(client, "/api/v1/alarms/active", 204)
        history = await get_json(client, "/api/v1/alarms/history")
        severities = [(await get_json(client, a["url"]))["severity"] for a in history["alarms"]]
        assert severities == ["major", "cleared"]
    finally:
        phone.kill()


async def test_history_survives_a_restart(gateway_factory):
    first = await gateway_factory(admin_password=PASSWORD)
    first.app[keys.ALARM_LOG].raise_alarm(alarm(1))
    first.app[keys.ALARM_LOG].clear_alarm("test:1")
    before = await get_json(first, "/api/v1/alarms/history")
    await first.close()

    second = await gateway_factory(admin_password=PASSWORD)
    assert await get_json(second, "/api/v1/alarms/history") == before
    assert [a["id"] for a in before["alarms"]] == ["1", "2"]


async def test_a_listener_that_cannot_bind_is_a_critical_alarm_cleared_by_the_next_start(
    gateway_factory, tmp_path, user_agent
):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = gateway_settings(tmp_path, listen_host="127.0.0.1", listen_port=port)
        runner = web.AppRunner(create_app(settings, sender_factory=lambda _: Borrowed(user_agent)))
        with pytest.raises(StartupError, match="cannot listen for SIP"):
            await runner.setup()
        await runner.cleanup()  # as `sipbridge serve` does after a failed start

    client = await gateway_factory(admin_password=PASSWORD, listen_host="127.0.0.1")
    await get_json(client, "/api/v1/alarms/active", 204)
    history = await get_json(client, "/api/v1/alarms/history")
    details = [await get_json(client, a["url"]) for a in history["alarms"]]
    assert [(d["severity"], d["source"]) for d in details] == [
        ("critical", "sip-listener"),
        ("cleared", "sip-listener"),
    ]
    assert "Address already in use" in details[0]["description"]


async def test_a_certificate_expiring_within_30_days_is_a_major_alarm(gateway_factory, tmp_path):
    issued = make_authority(tmp_path).issue("sipbridge")  # valid for two days
    client = await gateway_factory(
        admin_password=PASSWORD, tls_cert_file=issued.cert_file, tls_key_file=issued.key_file
    )
    active = None
    for _ in range(50):  # checked by a housekeeping task right after the start
        response = await client.get("/api/v1/alarms/active", headers=BASIC)
        if response.status == 200:
            active = await response.json()
            break
        await asyncio.sleep(0.05)
    assert active is not None
    [item] = active["alarms"]
    detail = await get_json(client, item["url"])
    assert (detail["severity"], detail["source"]) == ("major", "tls_cert_file")
    assert "expires on 20" in detail["description"]
