"""The SIP listener on real sockets: sipp phones register, and tell their calls by dialog events."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sipbridge.api import create_app, keys
from tests.helpers import SippPhone, free_port, run_sipp_uac, wait_for
from tests.integration.conftest import AUTH, Borrowed, gateway_settings

UA = "PolycomVVX-VVX_450-UA/6.4.3.5018"


def listener_port(client) -> int:
    return int(client.server.app[keys.LISTENER].port)


async def register(client, tmp_path, contact_port: int, *, expires: int = 300, target=None):
    target = target or f"127.0.0.1:{listener_port(client)}"
    result = await asyncio.to_thread(
        run_sipp_uac,
        "phone_register.xml",
        target,
        tmp_path,
        keys={"contact_port": str(contact_port), "expires": str(expires), "ua": UA},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


async def test_register_from_sipp_records_the_phone_and_commands_reach_it(
    gateway_factory, tmp_path
):
    client = await gateway_factory(subscribe_dialogs="none")
    phone = SippPhone(scenario="phone_ok.xml", port=free_port(), workdir=tmp_path).start()
    try:
        await register(client, tmp_path, phone.port, expires=300)
        record = await (await client.get("/v1/phones/1001", headers=AUTH)).json()
        assert record["contact"] == f"sip:1001@127.0.0.1:{phone.port}"
        assert record["user_agent"] == UA and record["learned_from"] == "register"
        assert record["received"].startswith("127.0.0.1:")
        await client.put("/v1/calls/pushed-1@h", json={"phone": "1001"}, headers=AUTH)
        response = await client.post("/v1/calls/pushed-1@h/hold", headers=AUTH)
        assert response.status == 200, await response.text()
        assert phone.finish() == 0
        assert [r.headers.get("Event") for r in phone.received] == ["ACTION-URI"]
    finally:
        phone.kill()


async def test_unregister_removes_the_phone(gateway_factory, tmp_path):
    client = await gateway_factory(subscribe_dialogs="none")
    await register(client, tmp_path, free_port(), expires=300)
    assert (await client.get("/v1/phones/1001", headers=AUTH)).status == 200
    await register(client, tmp_path, free_port(), expires=0)
    assert (await client.get("/v1/phones/1001", headers=AUTH)).status == 404


async def test_dialog_events_teach_the_tracker_which_phone_holds_the_call(
    gateway_factory, tmp_path
):
    client = await gateway_factory(subscribe_dialogs="sip")
    call_id = "learned-1@127.0.0.1"
    phone = SippPhone(
        scenario="phone_dialog_events.xml",
        port=free_port(),
        workdir=tmp_path,
        calls=2,
        keys={"callid": call_id},
    ).start()
    try:
        await register(client, tmp_path, phone.port)

        async def learned():
            response = await client.get(f"/v1/calls/{call_id}", headers=AUTH)
            return response.status == 200 and await response.json()

        call = await wait_for(learned)
        assert (call["phone"], call["state"]) == ("1001", "connected")
        response = await client.post(f"/v1/calls/{call_id}/hold", headers=AUTH)
        assert response.status == 200, await response.text()
        assert phone.finish() == 0
        methods = [r.method for r in phone.received]
        assert methods == ["SUBSCRIBE", "NOTIFY"]
        subscribe, notify = phone.received
        assert subscribe.headers.get("Event") == "dialog"
        assert f":{listener_port(client)}" in (subscribe.headers.get("Contact") or "")
        assert notify.headers.get("Event") == "ACTION-URI"
        assert call_id.encode() in notify.body
    finally:
        phone.kill()


def test_malformed_requests_are_answered_400_and_change_nothing(tmp_path, user_agent):
    async def run():
        settings = gateway_settings(tmp_path, subscribe_dialogs="none")
        app = create_app(settings, sender_factory=lambda _: Borrowed(user_agent))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            port = listener_port(client)
            bad = (
                b"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-x\r\n"
                b"From: <sip:1001@h>;tag=1\r\nTo: <sip:1001@h>\r\nCall-ID: m1\r\nCSeq: 1 REGISTER\r\n"
                b"Contact: <sip:1001@127.0.0.1:9>\r\nContent-Length: 50\r\n\r\n"
            )
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.settimeout(2)
                udp.sendto(bad, ("127.0.0.1", port))
                reply, _ = await asyncio.to_thread(udp.recvfrom, 65535)
                assert reply.startswith(b"SIP/2.0 400 ")
                udp.sendto(b"\x00" * 100, ("127.0.0.1", port))  # garbage: dropped
                udp.sendto(b"OPTIONS sip:x SIP/2.0\r\n\r\n", ("127.0.0.1", port))
                udp.settimeout(0.5)
                with pytest.raises(TimeoutError):
                    await asyncio.to_thread(udp.recvfrom, 65535)
            # Over TCP a missing Content-Length is malformed (RFC 3261 §18.3); the stream closes.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(bad.replace(b"Content-Length: 50\r\n", b""))
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
            assert (await (await client.get("/v1/phones", headers=AUTH)).json()) == {"phones": []}

    asyncio.run(run())


@pytest.mark.parametrize(("configured", "expected_rc"), [("s3cret-pass", 0), ("other-pass", 1)])
async def test_register_with_digest_credentials(gateway_factory, tmp_path, configured, expected_rc):
    # sipp answers the challenge with 1001 / s3cret-pass (phone_register_auth.xml).
    credentials = tmp_path / "register.toml"
    credentials.write_text(f'[register]\n"1001" = "{configured}"\n')
    # sipp 3.6 answers only MD5 and takes the first challenge: offer MD5 alone.
    client = await gateway_factory(
        subscribe_dialogs="none",
        register_credentials_file=credentials,
        register_digest_algorithms=("MD5",),
    )
    result = await asyncio.to_thread(
        run_sipp_uac,
        "phone_register_auth.xml",
        f"127.0.0.1:{listener_port(client)}",
        tmp_path,
        keys={"contact_port": str(free_port())},
        timeout=8,
    )
    assert result.returncode == expected_rc, result.stderr[-2000:]
    status = (await client.get("/v1/phones/1001", headers=AUTH)).status
    assert status == (200 if expected_rc == 0 else 404)
