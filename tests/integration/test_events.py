"""Events against a running gateway: a sipp phone's call seen over SSE from ringing to its end,
resuming across a restart, 410 past the log; state guards and dry runs that send nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from sipbridge.api import keys
from sipbridge.tracker import TrackerStore
from sipbridge.tracker.event_log import EventLog
from tests.helpers import SippPhone, free_port, run_sipp_uac
from tests.integration.conftest import AUTH

pytestmark = pytest.mark.integration

UA = "PolycomVVX-VVX_450-UA/6.4.3.5018"


@dataclass
class Sse:
    id: str | None
    event: str | None
    data: dict[str, Any]


async def sse_events(response: Any) -> AsyncIterator[Sse]:
    """Parse a text/event-stream body into events (comments and pings skipped)."""
    fields: dict[str, str] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if "data" in fields:
                yield Sse(fields.get("id"), fields.get("event"), json.loads(fields["data"]))
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")


async def take(stream: AsyncIterator[Sse], count: int, within: float = 15.0) -> list[Sse]:
    got: list[Sse] = []

    async def read() -> None:
        async for event in stream:
            got.append(event)
            if len(got) == count:
                return

    await asyncio.wait_for(read(), within)
    return got


async def test_an_sse_client_sees_a_sipp_call_ring_connect_hold_and_end(gateway_factory, tmp_path):
    client = await gateway_factory(subscribe_dialogs="sip")
    call_id = "lifecycle-1@127.0.0.1"
    response = await client.get(
        f"/v1/events?call_id={call_id}&types=call.ringing,call.connected,call.held,"
        "call.resumed,call.ended,command.completed",
        headers=AUTH,
    )
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    stream = sse_events(response)
    phone = SippPhone(
        scenario="phone_call_lifecycle.xml",
        port=free_port(),
        workdir=tmp_path,
        calls=2,
        keys={"callid": call_id},
    ).start()
    try:
        port = int(client.server.app[keys.LISTENER].port)
        result = await asyncio.to_thread(
            run_sipp_uac,
            "phone_register.xml",
            f"127.0.0.1:{port}",
            tmp_path,
            keys={"contact_port": str(phone.port), "expires": "300", "ua": UA},
        )
        assert result.returncode == 0, result.stdout[-2000:]
        first = await take(stream, 2)
        assert [e.event for e in first] == ["call.ringing", "call.connected"]
        held = await client.post(
            f"/v1/calls/{call_id}/hold", headers={**AUTH, "Client-State": "crm-42"}
        )
        assert held.status == 200, await held.text()
        rest = await take(stream, 3)
        events = first + rest
        assert [e.event for e in events] == [
            "call.ringing",
            "call.connected",
            "call.held",
            "command.completed",
            "call.ended",
        ]
        ids = [int(e.id or 0) for e in events]
        assert ids == sorted(set(ids))  # each once, in order
        assert [e.data["sequence"] for e in events] == [1, 2, 3, 4, 5]
        assert {e.data["call_id"] for e in events} == {call_id}
        assert {e.data["phone"] for e in events} == {"1001"}
        by_type = {e.event: e.data for e in events}
        assert by_type["call.held"]["client_state"] == "crm-42"
        assert by_type["command.completed"]["client_state"] == "crm-42"
        assert by_type["command.completed"]["data"]["command_uri"] == "/api/v1/callctrl/holdCall"
        assert by_type["call.ringing"]["client_state"] is None
        assert phone.finish() == 0
    finally:
        phone.kill()
        response.close()


async def _phone_and_call(client, n: int) -> None:
    response = await client.put(
        f"/v1/phones/p{n}", json={"contact": f"sip:p{n}@127.0.0.1:5999"}, headers=AUTH
    )
    assert response.status == 200
    response = await client.put(f"/v1/calls/c{n}@h", json={"phone": f"p{n}"}, headers=AUTH)
    assert response.status == 200


async def test_resume_with_last_event_id_after_a_restart_misses_nothing(
    gateway_factory, tmp_path
):
    first = await gateway_factory(subscribe_dialogs="none")
    for n in range(3):
        await _phone_and_call(first, n)  # 2 events each
    response = await first.get("/v1/events?last_event_id=0", headers=AUTH)
    seen = await take(sse_events(response), 3)
    response.close()
    await first.close()

    second = await gateway_factory(subscribe_dialogs="none")
    for n in range(3, 5):
        await _phone_and_call(second, n)
    last = seen[-1].id
    response = await second.get("/v1/events", headers={**AUTH, "Last-Event-ID": str(last)})
    stream = sse_events(response)
    resumed = await take(stream, 7)  # the 3 it had not had before the restart, 4 after
    # Then live: a new event arrives after the replay, once.
    await second.delete("/v1/calls/c0@h", headers=AUTH)
    live = await take(stream, 1)
    response.close()
    store = TrackerStore(tmp_path / "tracker.sqlite3")
    logged = [e.id for e in EventLog(store).after(int(last or 0))]
    store.close()
    assert [int(e.id or 0) for e in resumed + live] == logged
    assert [e.event for e in live] == ["call.ended"]
    assert resumed[0].event == "call.connected" and resumed[-1].event == "call.connected"


async def test_a_resume_point_older_than_the_log_is_410_with_the_oldest(
    gateway_factory, tmp_path
):
    client = await gateway_factory(subscribe_dialogs="none")
    for n in range(6):
        await _phone_and_call(client, n)
    store = TrackerStore(tmp_path / "tracker.sqlite3")
    EventLog(store).prune(max_age=10**9, max_rows=4)
    oldest, newest = EventLog(store).bounds()
    store.close()
    assert (oldest, newest) == (9, 12)
    response = await client.get("/v1/events", headers={**AUTH, "Last-Event-ID": "3"})
    assert response.status == 410
    body = await response.json()
    assert body["oldest"] == 9 and "resume from 9" in body["detail"]
    # Right at the edge is fine: nothing it needs was dropped.
    response = await client.get("/v1/events", headers={**AUTH, "Last-Event-ID": "8"})
    assert response.status == 200
    got = await take(sse_events(response), 4)
    assert [e.id for e in got] == ["9", "10", "11", "12"]
    response.close()


@pytest.mark.parametrize(
    ("query", "headers", "status"),
    [
        ("?types=call.exploded", AUTH, 422),
        ("", {**AUTH, "Last-Event-ID": "abc"}, 422),
        ("", {**AUTH, "Last-Event-ID": "9" * 30}, 422),
        ("", {}, 401),
    ],
)
async def test_bad_requests_for_events_are_4xx(gateway_factory, query, headers, status):
    client = await gateway_factory(subscribe_dialogs="none")
    response = await client.get(f"/v1/events{query}", headers=headers)
    assert response.status == status
    assert response.headers["Content-Type"].startswith("application/problem+json")


async def test_a_state_guard_and_a_dry_run_send_nothing(gateway_factory, tmp_path):
    client = await gateway_factory(subscribe_dialogs="none")
    phone = SippPhone(scenario="phone_ok.xml", port=free_port(), workdir=tmp_path).start()
    try:
        await client.put(
            "/v1/phones/1001", json={"contact": f"sip:1001@127.0.0.1:{phone.port}"}, headers=AUTH
        )
        await client.put(
            "/v1/calls/g1@h", json={"phone": "1001", "state": "held"}, headers=AUTH
        )
        refused = await client.post("/v1/calls/g1@h/hold", headers=AUTH)
        assert refused.status == 409
        body = await refused.json()
        assert body["state"] == "held" and "force=true" in body["detail"]
        planned = await client.post("/v1/calls/g1@h/resume?dry_run=true", headers=AUTH)
        assert planned.status == 200, await planned.text()
        plan = await planned.json()
        assert plan["dry_run"] is True and plan["transport"] == "sip"
        assert plan["request"]["request_uri"] == f"sip:1001@127.0.0.1:{phone.port}"
        assert json.loads(plan["request"]["body"]) == {
            "command-URI": "/api/v1/callctrl/resumeCall",
            "data": {"Ref": "g1@h"},
        }
        call = await (await client.get("/v1/calls/g1@h", headers=AUTH)).json()
        assert call["state"] == "held"  # a dry run changes nothing
        # The one real command: forced past the guard, it reaches the phone.
        forced = await client.post("/v1/calls/g1@h/hold?force=true", headers=AUTH)
        assert forced.status == 200, await forced.text()
        assert phone.finish() == 0
        assert len(phone.received) == 1  # neither the 409 nor the dry run sent a NOTIFY
        log = await (await client.get("/v1/commands", headers=AUTH)).json()
        assert [c["outcome"] for c in log["commands"]] == ["ok", "StateConflict"]
    finally:
        phone.kill()
