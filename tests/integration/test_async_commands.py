"""`Prefer: respond-async` against a running gateway and sipp phones: 202 at once, the result
later with the synchronous answer, the queued/ended events, refusals still at once, and an
interrupted command failed at the next start."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from sipbridge.tracker import TrackerStore
from sipbridge.tracker.async_commands import AsyncCommands
from sipbridge.tracker.event_log import EventLog
from tests.helpers import SippPhone, free_port
from tests.integration.conftest import AUTH, register

pytestmark = pytest.mark.integration

ASYNC = {**AUTH, "Prefer": "respond-async", "Client-State": "async-1"}


async def _until_ended(client, location: str, within: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        body: dict[str, Any] = await (await client.get(location, headers=AUTH)).json()
        if body["state"] != "queued":
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{location} still queued")


async def test_an_async_hold_is_202_then_the_synchronous_answer(gateway_factory, tmp_path):
    gateway = await gateway_factory(subscribe_dialogs="none")
    phone = SippPhone(scenario="phone_slow.xml", port=free_port(), workdir=tmp_path, transport="t1")
    phone.start()
    try:
        await register(gateway, "1001", phone.contact.split(";")[0], "a1@h", transport="tcp")
        started = time.monotonic()
        accepted = await gateway.post("/v1/calls/a1@h/hold", headers=ASYNC)
        assert accepted.status == 202, await accepted.text()
        assert time.monotonic() - started < 1.0  # the phone takes 1.4 s: not waited for
        body = await accepted.json()
        assert accepted.headers["Location"] == body["location"] == f"/v1/commands/{body['id']}"
        queued = await (await gateway.get(body["location"], headers=AUTH)).json()
        assert queued["state"] == "queued" and queued["result"] is None
        ended = await _until_ended(gateway, body["location"])
        assert (ended["state"], ended["http_status"]) == ("completed", 200)
        result = ended["result"]
        assert (result["call_id"], result["sip_status"]) == ("a1@h", 200)
        call = await (await gateway.get("/v1/calls/a1@h", headers=AUTH)).json()
        assert call["state"] == "held"
        assert phone.finish() == 0 and len(phone.received) == 1
        store = TrackerStore(tmp_path / "tracker.sqlite3")
        events = [e for e in EventLog(store).after(0) if e.type.startswith("command.")]
        store.close()
        assert [(e.type, e.client_state) for e in events] == [
            ("command.queued", "async-1"),
            ("command.completed", "async-1"),
        ]
        assert events[0].data["async_id"] == body["id"]
    finally:
        phone.kill()


async def test_refusals_are_answered_at_once_and_a_phone_error_is_kept(gateway_factory, tmp_path):
    gateway = await gateway_factory(subscribe_dialogs="none")
    unknown = await gateway.post("/v1/calls/nobody@h/hold", headers=ASYNC)
    assert unknown.status == 404  # no 202 for what cannot even be planned
    phone = SippPhone(scenario="phone_busy.xml", port=free_port(), workdir=tmp_path).start()
    try:
        await register(gateway, "1001", phone.contact, "a2@h")
        guarded = await gateway.post("/v1/calls/a2@h/resume", headers=ASYNC)
        assert guarded.status == 409
        accepted = await gateway.post("/v1/calls/a2@h/hold", headers=ASYNC)
        assert accepted.status == 202
        ended = await _until_ended(gateway, (await accepted.json())["location"])
        assert ended["state"] == "failed" and ended["http_status"] == 502
        assert ended["result"]["sip_status"] == 486
    finally:
        phone.kill()
    bad = await gateway.get("/v1/commands/abc", headers=AUTH)
    assert bad.status == 422
    missing = await gateway.get("/v1/commands/999999", headers=AUTH)
    assert missing.status == 404


async def test_a_command_queued_when_the_service_died_is_failed_at_the_next_start(
    gateway_factory, tmp_path
):
    store = TrackerStore(tmp_path / "tracker.sqlite3")
    stale = AsyncCommands(store).queue(worker=0, event={"phone": "1001"})
    store.close()
    gateway = await gateway_factory(subscribe_dialogs="none")
    body = await (await gateway.get(f"/v1/commands/{stale}", headers=AUTH)).json()
    assert (body["state"], body["http_status"]) == ("failed", 503)
    assert "may have reached the phone" in body["result"]["detail"]
