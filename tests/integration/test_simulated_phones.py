"""The real gateway and UA against simulated Poly phones on their own SIP ports."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sipbridge.api import create_app
from sipbridge.sim import SimPhone, SimPhoneServer
from tests.integration.conftest import AUTH, Borrowed, gateway_settings, register


@pytest.fixture
async def sim():
    servers: list[SimPhoneServer] = []

    async def start(extension: str = "1001", *, tcp: bool = False, processing_time: float = 0.0):
        server = SimPhoneServer(SimPhone(extension), processing_time=processing_time)
        await server.start()
        servers.append(server)
        contact = server.contact + (";transport=tcp" if tcp else "")
        return server, contact

    yield start
    for server in servers:
        await server.stop()


async def post(client, path, body=None):
    response = await client.post(path, json=body, headers=AUTH)
    return response.status, await response.json()


@pytest.mark.parametrize("tcp", [False, True])
async def test_hold_and_resume_change_the_phones_call(gateway, sim, tcp):
    server, contact = await sim(tcp=tcp)
    call = server.phone.add_call()
    await register(gateway, "1001", contact, call.call_id)

    status, result = await post(gateway, f"/v1/calls/{call.call_id}/hold")
    assert (status, result["sip_status"]) == (200, 200)
    assert call.state == "held"
    status, _ = await post(gateway, f"/v1/calls/{call.call_id}/resume")
    assert status == 200
    assert call.state == "connected"
    assert [r.command_uri for r in server.phone.received] == [
        "/api/v1/callctrl/holdCall",
        "/api/v1/callctrl/resumeCall",
    ]


async def test_every_action_does_what_it_says_on_the_phone(gateway, sim):
    server, contact = await sim()
    phone = server.phone
    a = phone.add_call(remote="sip:alice@x")
    b = phone.add_call(remote="sip:bob@x", state="held")
    ringing = phone.add_call(state="ringing")
    await register(gateway, "1001", contact)
    for call in (a, b, ringing):
        await register(gateway, "1001", contact, call.call_id, state=call.state)

    assert (await post(gateway, f"/v1/calls/{a.call_id}/dtmf", {"digits": "42#"}))[0] == 200
    assert a.dtmf == ["42#"]
    assert (await post(gateway, f"/v1/calls/{a.call_id}/mute"))[0] == 200
    assert phone.muted
    assert (await post(gateway, f"/v1/calls/{a.call_id}/unmute"))[0] == 200
    assert not phone.muted
    assert (await post(gateway, f"/v1/calls/{ringing.call_id}/reject"))[0] == 200
    assert ringing.call_id not in phone.calls
    status, body = await post(
        gateway, f"/v1/calls/{a.call_id}/warm-transfer", {"other_call_id": b.call_id}
    )
    assert status == 200, body
    assert phone.calls == {} and phone.transfers == [(a.call_id, "sip:bob@x")]
    calls = await (await gateway.get("/v1/calls", headers=AUTH)).json()
    assert calls["calls"] == []

    status, _ = await post(gateway, "/v1/phones/1001/dial", {"destination": "1002"})
    assert status == 200
    [dialled] = phone.calls.values()
    assert dialled.remote == "1002"


async def test_phone_refusal_is_reported_and_tracker_unchanged(gateway, sim):
    _, contact = await sim()
    await register(gateway, "1001", contact, "gone@127.0.0.1")  # the phone does not know it
    status, body = await post(gateway, "/v1/calls/gone@127.0.0.1/hold")
    assert status == 502
    assert (body["sip_status"], body["sip_reason"]) == (404, "Call Does Not Exist")
    call = await (await gateway.get("/v1/calls/gone@127.0.0.1", headers=AUTH)).json()
    assert call["state"] == "connected"


async def test_one_in_flight_per_phone_where_the_phone_would_refuse_parallel(gateway, sim):
    server, contact = await sim(processing_time=0.2)
    calls = [server.phone.add_call(state=s) for s in ("connected", "held", "held")]
    for call in calls:
        await register(gateway, "1001", contact, call.call_id, state=call.state)
    # Two ids for the same phone bypass the per-phone queue: the phone itself refuses.
    await register(gateway, "1001-alias", contact)

    results = await asyncio.gather(
        post(gateway, f"/v1/calls/{calls[1].call_id}/end"),
        post(gateway, f"/v1/calls/{calls[2].call_id}/end"),
        post(
            gateway,
            "/v1/phones/1001-alias/commands",
            {"command_uri": "mute", "data": {"state": "1"}},
        ),
    )
    statuses = [status for status, _ in results]
    assert statuses[:2] == [200, 200], results  # same phone id: queued, both done
    assert statuses[2] == 502 and results[2][1]["sip_reason"] == "Device Busy"
    assert set(server.phone.calls) == {calls[0].call_id}


async def test_retransmissions_are_absorbed_and_the_command_runs_once(gateway, sim):
    # 1.2 s of processing: pjsua retransmits the NOTIFY at 0.5 s and 1.5 s (T1 = 500 ms).
    server, contact = await sim(processing_time=1.2)
    call = server.phone.add_call()
    await register(gateway, "1001", contact, call.call_id)
    status, _ = await post(gateway, f"/v1/calls/{call.call_id}/hold")
    assert status == 200
    assert len(server.phone.received) == 1
    assert call.state == "held"


async def test_tracker_survives_a_gateway_restart(tmp_path, user_agent, sim):
    server, contact = await sim()
    call = server.phone.add_call()
    settings = gateway_settings(tmp_path)
    first = create_app(settings, sender_factory=lambda _: Borrowed(user_agent))
    async with TestClient(TestServer(first, host="127.0.0.1")) as client:
        await register(client, "1001", contact, call.call_id)
        assert (await post(client, f"/v1/calls/{call.call_id}/hold"))[0] == 200
    second = create_app(settings, sender_factory=lambda _: Borrowed(user_agent))
    async with TestClient(TestServer(second, host="127.0.0.1")) as client:
        tracked = await (await client.get(f"/v1/calls/{call.call_id}", headers=AUTH)).json()
        assert tracked["state"] == "held"
        assert (await post(client, f"/v1/calls/{call.call_id}/resume"))[0] == 200
    assert call.state == "connected"
