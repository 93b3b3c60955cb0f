"""Integration fixtures: a real pjsua2 user agent and a real gateway on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sipbridge.api import create_app
from sipbridge.config import Settings
from sipbridge.sip._pjsua2 import PjsuaSender
from sipbridge.sip.action_uri import OutgoingRequest, SipAnswer

API_KEY = "integration-key-42"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
DEADLINE = 3.0
TRANSACTION_TIMEOUT = 2.0


@pytest.fixture(scope="session")
def user_agent() -> Iterator[PjsuaSender]:
    """One real UA for the session: pjsua2 allows one Endpoint per process."""
    agent = PjsuaSender(host="127.0.0.1", port=0, transaction_timeout=TRANSACTION_TIMEOUT)
    agent.start()
    yield agent
    agent.stop()


class Borrowed:
    """The session's UA lent to one gateway, which must not stop it."""

    def __init__(self, agent: PjsuaSender) -> None:
        self._agent = agent

    @property
    def local_contact(self) -> str:
        return self._agent.local_contact

    def start(self) -> None:
        pass  # the session UA is started once, and stopped by its fixture

    def stop(self) -> None:
        pass

    async def send(self, request: OutgoingRequest) -> SipAnswer:
        return await self._agent.send(request)


def gateway_settings(tmp_path, **overrides) -> Settings:
    values = {
        "api_keys": (API_KEY,),
        "data_dir": tmp_path,
        "command_deadline": DEADLINE,
        "listen_port": 0,
    }
    return Settings(**(values | overrides))


@pytest.fixture
def settings(tmp_path) -> Settings:
    return gateway_settings(tmp_path)


@pytest.fixture
async def gateway(settings, user_agent) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = create_app(settings, sender_factory=lambda _: Borrowed(user_agent))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


@pytest.fixture
async def gateway_factory(tmp_path, user_agent):
    """Gateways on the session's UA, each with its own settings; all closed after the test."""
    made: list[TestClient[web.Request, web.Application]] = []

    async def make(**overrides) -> TestClient[web.Request, web.Application]:
        settings = gateway_settings(tmp_path, **overrides)
        app = create_app(settings, sender_factory=lambda _: Borrowed(user_agent))
        client: TestClient[web.Request, web.Application] = TestClient(
            TestServer(app, host="127.0.0.1")
        )
        await client.start_server()
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


async def register(
    client, phone: str, contact: str, call_id: str | None = None, state="connected", **fields
):
    body = {"contact": contact, **fields}
    response = await client.put(f"/v1/phones/{phone}", json=body, headers=AUTH)
    assert response.status == 200, await response.text()
    if call_id is not None:
        response = await client.put(
            f"/v1/calls/{call_id}", json={"phone": phone, "state": state}, headers=AUTH
        )
        assert response.status == 200, await response.text()
