"""sips: and ;transport=tls phones when sipbridge has no SIP over TLS: a clear 422, nothing sent."""

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sipbridge.api import create_app
from sipbridge.config import Settings
from sipbridge.sip.sender import FakeSender

KEY = "unit-test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}
TLS_CONTACTS = ["sips:1001@10.0.0.5:5061", "sip:1001@10.0.0.5:5061;transport=tls"]


async def gateway(tmp_path, sender, **settings):
    app = create_app(
        Settings(api_keys=(KEY,), data_dir=tmp_path, listen_port=0, **settings),
        sender_factory=lambda _: sender,
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def hold(client, contact):
    response = await client.put("/v1/phones/1001", json={"contact": contact}, headers=AUTH)
    assert response.status == 200, await response.text()
    response = await client.put("/v1/calls/c1@h", json={"phone": "1001"}, headers=AUTH)
    assert response.status == 200, await response.text()
    return await client.post("/v1/calls/c1@h/hold", headers=AUTH)


@pytest.mark.parametrize("contact", TLS_CONTACTS)
async def test_a_tls_phone_without_sip_tls_is_refused_before_sending(tmp_path, contact):
    sender = FakeSender()
    client = await gateway(tmp_path, sender)
    try:
        response = await hold(client, contact)
        assert response.status == 422, await response.text()
        problem = await response.json()
        assert problem["type"].endswith("transport-unavailable")
        assert "SIP over TLS is off: set sip_tls_port" in problem["detail"]
        assert sender.sent == []
    finally:
        await client.close()


@pytest.mark.parametrize("contact", TLS_CONTACTS)
async def test_with_sip_tls_the_command_goes_out_over_tls(tmp_path, contact):
    sender = FakeSender()
    client = await gateway(tmp_path, sender, sip_tls_port=5071)
    try:
        response = await hold(client, contact)
        assert response.status == 200, await response.text()
        [sent] = sender.sent
        assert sent.target_uri.startswith("sips:") or sent.target_uri.endswith(";transport=tls")
    finally:
        await client.close()
