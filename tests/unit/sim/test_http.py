"""The simulated phone's web server, over a real loopback socket with aiohttp's client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientSession, DigestAuthMiddleware, encode_basic_auth

from sipbridge.sim import SimPhone
from sipbridge.sim.http import SimHttpPhone, SimHttpServer

USER, PASSWORD = "Polycom", "S3cret-Admin-1"
BASIC = {"Authorization": encode_basic_auth(USER, PASSWORD)}


@pytest.fixture
async def web() -> AsyncIterator[tuple[SimHttpPhone, SimHttpServer]]:
    http = SimHttpPhone(SimPhone("1001"), auth=("SHA-256", "basic"), sessions=True)
    server = SimHttpServer(http)
    await server.start()
    try:
        yield http, server
    finally:
        await server.stop()


async def test_session_cookie_is_secure_and_http_only(web) -> None:
    # Manual 002, SessionCreate: the cookie is "Path=/; Secure; HttpOnly; Max-Age=1500".
    _, server = web
    digest = (DigestAuthMiddleware(USER, PASSWORD),)
    async with (
        ClientSession(middlewares=digest) as client,
        client.get(f"{server.url}/api/v1/mgmt/session/create") as response,
    ):
        assert response.status == 200, await response.text()
        cookie = response.cookies["session"]
    assert cookie["secure"] is True and cookie["httponly"] is True
    assert (cookie["path"], cookie["max-age"]) == ("/", "1500")


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_sip_status_answers_both_methods(web, method) -> None:
    # sipStatus is GET in manual 000 and POST in manual 002.
    _, server = web
    url = f"{server.url}/api/v1/webCallControl/sipStatus"
    async with ClientSession() as client, client.request(method, url, headers=BASIC) as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["Status"] == "2000"


async def test_an_ignored_call_stops_ringing_in_call_status(web) -> None:
    http, server = web
    call = http.phone.add_call(state="ringing")
    http.phone.handle_notify(
        event="ACTION-URI",
        content_type="application/json",
        body=json.dumps(
            {"command-URI": "/api/v1/callctrl/ignoreCall", "data": {"Ref": call.call_id}}
        ).encode(),
    )
    url = f"{server.url}/api/v2/webCallControl/callStatus"
    async with ClientSession() as client, client.get(url, headers=BASIC) as response:
        body = await response.json()
    assert response.status == 200, body
    [status] = body["data"] if isinstance(body["data"], list) else [body["data"]]
    assert status["Ringing"] == "0"
