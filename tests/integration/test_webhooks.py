"""Webhooks against a running gateway: a receiver on loopback verifies every signature with the
`standardwebhooks` library; retries keep the webhook-id; dead letters; the SSRF guard; no
redirect followed; kill -9 of `sipbridge serve` mid-delivery loses no committed event."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks import Webhook

from tests.helpers import SippPhone, free_port
from tests.integration.conftest import AUTH, register

pytestmark = pytest.mark.integration

CALL_ID = "7a3c2a1b-9e8d7c6b-0a1b2c3d@127.0.0.1"


@dataclass
class Receiver:
    """An aiohttp server on 127.0.0.1 that records every POST; `answers` are the statuses it
    gives in turn (then 200)."""

    answers: list[int] = field(default_factory=list)
    delay: float = 0.0
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    redirected: int = 0
    server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/hook"))

    async def hook(self, request: web.Request) -> web.Response:
        self.got.append((dict(request.headers), await request.read()))
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.answers.pop(0) if self.answers else 200
        if status in (301, 302, 307):
            raise (
                web.HTTPFound("/elsewhere")
                if status == 302
                else web.HTTPTemporaryRedirect("/elsewhere")
            )
        return web.Response(status=status)

    async def elsewhere(self, request: web.Request) -> web.Response:
        self.redirected += 1
        return web.Response(status=200)

    def verified(self, secret: str) -> list[dict[str, object]]:
        signer = Webhook(secret)
        return [signer.verify(body, headers) for headers, body in self.got]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()
    app = web.Application()
    app.router.add_post("/hook", recv.hook)
    app.router.add_post("/elsewhere", recv.elsewhere)
    recv.server = TestServer(app, host="127.0.0.1")
    await recv.server.start_server()
    yield recv
    await recv.server.close()


async def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def subscribe(client, url: str, **body) -> dict[str, Any]:
    response = await client.post("/v1/webhooks", json={"url": url, **body}, headers=AUTH)
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    return created


@pytest.fixture
def sipp(tmp_path) -> Iterator[SippPhone]:
    phone = SippPhone(scenario="phone_ok.xml", port=free_port(), workdir=tmp_path)
    phone.start()
    yield phone
    phone.kill()


async def test_events_from_real_calls_arrive_signed_and_verify(gateway, receiver, sipp):
    hook = await subscribe(gateway, receiver.url)
    assert hook["secret"].startswith("whsec_")
    await register(gateway, "1001", sipp.contact, CALL_ID)
    response = await gateway.post(f"/v1/calls/{CALL_ID}/hold", headers=AUTH)
    assert response.status == 200, await response.text()

    await wait_until(lambda: any(b"command.completed" in body for _, body in receiver.got))
    events = receiver.verified(hook["secret"])
    types = [event["type"] for event in events]
    assert "phone.registered" in types and "call.connected" in types
    assert "command.completed" in types
    ids = [headers["webhook-id"] for headers, _ in receiver.got]
    assert ids == [f"evt_{event['id']}" for event in events]
    # The secret is shown once: later reads never carry it.
    listed = await (await gateway.get("/v1/webhooks", headers=AUTH)).json()
    assert [h["id"] for h in listed["webhooks"]] == [hook["id"]]
    assert "secret" not in json.dumps(listed)
    log = await (await gateway.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=AUTH)).json()
    assert all(d["state"] == "delivered" and d["last_status"] == 200 for d in log["deliveries"])
    assert all(d["latency_ms"] is not None for d in log["deliveries"])


async def test_a_failed_post_is_retried_with_the_same_webhook_id(gateway_factory, receiver):
    gateway = await gateway_factory(webhook_backoff_base=0.05, webhook_backoff_cap=0.2)
    receiver.answers = [500, 503]
    hook = await subscribe(gateway, receiver.url, types=["phone.registered"])
    await register(gateway, "1002", "sip:1002@127.0.0.1:5999")

    await wait_until(lambda: len(receiver.got) == 3)
    assert len({headers["webhook-id"] for headers, _ in receiver.got}) == 1
    assert [e["type"] for e in receiver.verified(hook["secret"])] == ["phone.registered"] * 3
    log = await (await gateway.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=AUTH)).json()
    (delivery,) = log["deliveries"]
    assert (delivery["state"], delivery["tries"], delivery["last_status"]) == ("delivered", 3, 200)


async def test_dead_lettered_after_max_tries_then_redelivered(gateway_factory, receiver):
    gateway = await gateway_factory(
        webhook_backoff_base=0.05, webhook_backoff_cap=0.1, webhook_max_tries=2
    )
    receiver.answers = [500, 500]
    hook = await subscribe(gateway, receiver.url, phone="1003")
    await register(gateway, "1003", "sip:1003@127.0.0.1:5999")
    await register(gateway, "1004", "sip:1004@127.0.0.1:5999")  # filtered out by phone

    path = f"/v1/webhooks/{hook['id']}/deliveries"

    async def states() -> list[str]:
        return [d["state"] for d in (await (await gateway.get(path, headers=AUTH)).json())[
            "deliveries"
        ]]  # fmt: skip

    deadline = time.monotonic() + 10
    while await states() != ["dead"] and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert await states() == ["dead"]
    assert len(receiver.got) == 2
    (delivery,) = (await (await gateway.get(path, headers=AUTH)).json())["deliveries"]
    response = await gateway.post(f"{path}/{delivery['id']}/redeliver", headers=AUTH)
    assert response.status == 202, await response.text()
    await wait_until(lambda: len(receiver.got) == 3)
    assert receiver.got[2][0]["webhook-id"] == receiver.got[0][0]["webhook-id"]
    assert {e["phone"] for e in receiver.verified(hook["secret"])} == {"1003"}


async def test_ping_reaches_the_receiver(gateway, receiver):
    hook = await subscribe(gateway, receiver.url)
    response = await gateway.post(f"/v1/webhooks/{hook['id']}/ping", headers=AUTH)
    assert response.status == 202, await response.text()
    await wait_until(lambda: len(receiver.got) == 1)
    assert receiver.verified(hook["secret"])[0]["type"] == "webhook.ping"
    assert (await gateway.delete(f"/v1/webhooks/{hook['id']}", headers=AUTH)).status == 204
    assert (await gateway.get(f"/v1/webhooks/{hook['id']}", headers=AUTH)).status == 404


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://[fe80::1]/hook",
        "ftp://127.0.0.1/hook",
        "http://user:pass@127.0.0.1/hook",
        "http:///nohost",
        "http://no-such-name.invalid/hook",
    ],
)
async def test_targets_outside_webhook_allow_are_refused(gateway, url):
    response = await gateway.post("/v1/webhooks", json={"url": url}, headers=AUTH)
    assert response.status == 422, await response.text()
    problem = await response.json()
    assert "url" in problem["detail"]
    assert (await (await gateway.get("/v1/webhooks", headers=AUTH)).json())["webhooks"] == []


async def test_a_redirect_is_not_followed(gateway_factory, receiver):
    gateway = await gateway_factory(webhook_backoff_base=0.05, webhook_backoff_cap=0.1)
    receiver.answers = [307]  # 307 keeps the POST: a followed redirect would reach /elsewhere
    hook = await subscribe(gateway, receiver.url, types=["phone.registered"])
    await register(gateway, "1005", "sip:1005@127.0.0.1:5999")
    await wait_until(lambda: len(receiver.got) == 2)
    assert receiver.redirected == 0
    log = await (await gateway.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=AUTH)).json()
    assert log["deliveries"][0]["tries"] == 2


# -- kill -9 of a real `sipbridge serve` -------------------------------------------------------

SIPBRIDGE = [sys.executable, "-m", "sipbridge"]
KEY = "webhook-kill-key-1"


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPBRIDGE_")}
    env.update(
        {
            "SIPBRIDGE_DATA_DIR": str(data_dir),
            "SIPBRIDGE_HTTP_PORT": str(free_port()),
            "SIPBRIDGE_SIP_PORT": str(free_port()),
            "SIPBRIDGE_LISTEN_PORT": str(free_port()),
            "SIPBRIDGE_SUBSCRIBE_DIALOGS": "none",
            "SIPBRIDGE_API_KEYS": KEY,
            "SIPBRIDGE_WEBHOOK_BACKOFF_BASE": "0.05",
            "SIPBRIDGE_WEBHOOK_BACKOFF_CAP": "0.2",
            "SIPBRIDGE_WEBHOOK_CONCURRENCY": "2",
        }
    )
    return env


async def _start(env: dict[str, str]) -> subprocess.Popen[bytes]:
    import aiohttp

    process = subprocess.Popen(
        [*SIPBRIDGE, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{env['SIPBRIDGE_HTTP_PORT']}"
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert process.poll() is None, "sipbridge serve exited"
            try:
                async with session.get(f"{base}/v1/health") as answer:
                    if answer.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    process.kill()
    raise AssertionError("the service did not come up")


async def test_kill_9_mid_delivery_loses_no_committed_event(tmp_path, receiver):
    import aiohttp

    env = _env(tmp_path / "data")
    base = f"http://127.0.0.1:{env['SIPBRIDGE_HTTP_PORT']}"
    auth = {"Authorization": f"Bearer {KEY}"}
    receiver.delay = 0.3  # slow: POSTs are in flight when the kill comes
    receiver.answers = [500] * 5
    process = await _start(env)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{base}/v1/webhooks", json={"url": receiver.url}, headers=auth
            ) as answer:
                assert answer.status == 201, await answer.text()
                secret = (await answer.json())["secret"]
            phones = [f"20{n:02d}" for n in range(12)]
            for phone in phones:
                async with session.put(
                    f"{base}/v1/phones/{phone}",
                    json={"contact": f"sip:{phone}@127.0.0.1:5999"},
                    headers=auth,
                ) as answer:
                    assert answer.status == 200, await answer.text()
            await wait_until(lambda: len(receiver.got) >= 2)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            assert len({h["webhook-id"] for h, _ in receiver.got}) < len(phones)
            process = await _start(env)
            receiver.delay = 0.0

            def all_arrived() -> bool:
                phones_seen = {e["phone"] for e in receiver.verified(secret)}
                return set(phones) <= phones_seen

            await wait_until(all_arrived, timeout=30)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    events = receiver.verified(secret)
    by_id: dict[str, set[str]] = {}
    for (headers, _), event in zip(receiver.got, events, strict=True):
        assert headers["webhook-id"] == f"evt_{event['id']}"
        by_id.setdefault(headers["webhook-id"], set()).add(json.dumps(event, sort_keys=True))
    assert all(len(bodies) == 1 for bodies in by_id.values())  # a retry is the same message
    assert {e["phone"] for e in events if e["type"] == "phone.registered"} == set(phones)
