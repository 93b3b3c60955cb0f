"""A failed command is logged with how long it took, a 504 as much as a 502."""

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sipbridge.api import create_app
from sipbridge.config import Settings
from sipbridge.sip.action_uri import SipAnswer
from sipbridge.sip.sender import FakeSender

KEY = "unit-test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}
CALL_ID = "lat-1@10.0.0.5"


@pytest.mark.parametrize(
    ("answer", "delay", "status"),
    [
        (SipAnswer(status=486, reason="Busy Here", from_wire=True), 0.05, 502),
        (SipAnswer(status=200, reason="OK", from_wire=True), 2.0, 504),  # past the 1 s deadline
    ],
)
async def test_a_failed_command_logs_its_latency(tmp_path, answer, delay, status):
    settings = Settings(api_keys=(KEY,), data_dir=tmp_path, command_deadline=1.0, listen_port=0)
    sender = FakeSender(lambda _: answer, delay=delay)
    app = create_app(settings, sender_factory=lambda _: sender)
    async with TestClient(TestServer(app)) as client:
        await client.put("/v1/phones/1001", json={"contact": "sip:1001@10.0.0.5"}, headers=AUTH)
        await client.put(f"/v1/calls/{CALL_ID}", json={"phone": "1001"}, headers=AUTH)
        response = await client.post(f"/v1/calls/{CALL_ID}/hold", headers=AUTH)
        assert response.status == status
        [entry] = (await (await client.get("/v1/commands", headers=AUTH)).json())["commands"]
    assert entry["latency_ms"] is not None
    assert entry["latency_ms"] >= min(delay, 1.0) * 1000 * 0.9
