"""A command is answered only after what it changed committed (group_commit.py), and a write
that failed after the phone accepted is answered as an error, not as success (issue #23 item 5)."""

import logging
import sqlite3

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sipbridge.api import create_app, keys
from sipbridge.config import Settings
from sipbridge.errors import StoreError
from sipbridge.sip.sender import FakeSender

KEY = "unit-test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}
CALL_ID = "0a1b2c3d-4e5f6071@10.0.0.5"


class Seen:
    """What another connection to the tracker's file saw when the answer was about to go."""

    def __init__(self) -> None:
        self.at_answer: list[tuple[str, list[tuple[str, ...]], list[tuple[str, ...]]]] = []


@pytest.fixture
def seen():
    return Seen()


@pytest.fixture
async def client(tmp_path, seen):
    settings = Settings(api_keys=(KEY,), data_dir=tmp_path, command_deadline=1, listen_port=0)
    app = create_app(settings, sender_factory=lambda _: FakeSender())

    async def before_answer(request: web.Request, response: web.StreamResponse) -> None:
        if request.method != "POST":
            return
        peer = sqlite3.connect(settings.database_path, isolation_level=None)
        try:
            seen.at_answer.append(
                (
                    request.path,
                    list(peer.execute("SELECT state FROM calls")),
                    list(peer.execute("SELECT outcome FROM commands ORDER BY id")),
                )
            )
        finally:
            peer.close()

    app.on_response_prepare.append(before_answer)
    async with TestClient(TestServer(app)) as client:
        for path, body in (
            ("/v1/phones/1001", {"contact": "sip:1001@10.0.0.5:5060"}),
            (f"/v1/calls/{CALL_ID}", {"phone": "1001", "state": "connected"}),
        ):
            response = await client.put(path, json=body, headers=AUTH)
            assert response.status == 200, await response.text()
        yield client


async def test_the_http_answer_goes_out_only_after_state_and_log_committed(client, seen):
    response = await client.post(f"/v1/calls/{CALL_ID}/hold", headers=AUTH)
    assert response.status == 200, await response.text()
    [(path, states, outcomes)] = seen.at_answer
    assert path == f"/v1/calls/{CALL_ID}/hold"
    assert (states, outcomes) == ([("held",)], [("ok",)])


async def test_a_failed_state_write_after_the_phone_accepted_is_503(client, seen, caplog):
    store = client.app[keys.STORE]

    def broken(call_id, state, **_):
        raise StoreError("disk I/O error")

    store.set_call_state = broken
    with caplog.at_level(logging.ERROR):
        response = await client.post(f"/v1/calls/{CALL_ID}/hold", headers=AUTH)
    assert response.status == 503, await response.text()
    body = await response.json()
    assert "the phone carried out the command" in body["detail"]
    assert "disk I/O error" in body["detail"]
    assert body["phone"] == "1001" and body["call_id"] == CALL_ID
    call = await (await client.get(f"/v1/calls/{CALL_ID}", headers=AUTH)).json()
    assert call["state"] == "connected"


async def test_a_failed_log_write_alone_keeps_the_phones_answer(client, seen, caplog):
    # The client is told what the phone did and the call's new state, not that an audit row
    # exists; the lost row is logged (docs/testing.md, "Failed commits").
    store = client.app[keys.STORE]

    def broken(entry):
        raise StoreError("disk I/O error")

    store.log_command = broken
    with caplog.at_level(logging.ERROR, logger="sipbridge.commands.journal"):
        response = await client.post(f"/v1/calls/{CALL_ID}/hold", headers=AUTH)
    assert response.status == 200, await response.text()
    assert "command log write failed: disk I/O error" in caplog.text
    [(_, states, outcomes)] = seen.at_answer
    assert (states, outcomes) == ([("held",)], [])
