"""API authentication: bad bytes, throttling of repeated failures, the stored key's file."""

import asyncio
import json
import logging
import os
import stat

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sipbridge.admin.throttle import FailureThrottle
from sipbridge.api import create_app
from sipbridge.api.auth import stored_or_new_key
from sipbridge.config import Settings
from sipbridge.errors import StartupError
from sipbridge.sip.sender import FakeSender

KEY = "unit-test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
async def client(tmp_path):
    settings = Settings(
        api_keys=(KEY,),
        data_dir=tmp_path,
        listen_port=0,
        api_auth_failure_limit=3,
        api_auth_failure_window=60,
    )
    app = create_app(settings, sender_factory=lambda _: FakeSender())
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def raw_request(port: int, head: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()
    header_block, _, body = data.partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


async def test_an_authorization_header_that_is_not_utf8_is_a_401_not_a_500(client, caplog):
    head = (
        b"GET /v1/phones HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer \xff\xfe\xc3(key\r\n\r\n"
    )
    with caplog.at_level(logging.ERROR):
        status, headers, body = await raw_request(client.server.port, head)
    assert status == 401
    assert headers["Content-Type"].startswith("application/problem+json")
    assert json.loads(body)["type"] == "urn:sipbridge:problem:unauthorized"
    assert not [r for r in caplog.records if r.exc_info], "no traceback in the log"


async def test_repeated_failures_from_one_address_are_throttled_with_retry_after(client):
    for _ in range(3):
        assert (await client.get("/v1/phones", headers={"Authorization": "Bearer wrong-key"})).status == 401
    throttled = await client.get("/v1/phones", headers={"Authorization": "Bearer wrong-key"})
    assert throttled.status == 429
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert (await throttled.json())["type"] == "urn:sipbridge:problem:auth-throttled"
    # The public routes stay open.
    assert (await client.get("/v1/health")).status == 200


async def test_a_success_clears_the_count(client):
    for _ in range(5):
        for _ in range(2):
            assert (await client.get("/v1/phones", headers={"Authorization": "Bearer nope-nope"})).status == 401
        assert (await client.get("/v1/phones", headers=AUTH)).status == 200


def test_the_throttle_forgets_after_its_window_and_stays_bounded():
    now = [0.0]
    throttle = FailureThrottle(limit=2, window=10, clock=lambda: now[0], max_clients=100)
    throttle.failed("a")
    throttle.failed("a")
    assert throttle.retry_after("a") == 10
    now[0] = 9.5
    assert throttle.retry_after("a") == 1
    now[0] = 10.0
    assert throttle.retry_after("a") is None
    for n in range(1000):
        throttle.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(throttle) == 100


def test_a_stored_key_others_can_read_stops_the_start(tmp_path):
    key, path, created = stored_or_new_key(tmp_path / "data")
    assert created and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert stored_or_new_key(tmp_path / "data")[0] == key
    path.chmod(0o644)
    with pytest.raises(StartupError, match="chmod 600"):
        stored_or_new_key(tmp_path / "data")


def test_a_new_key_is_private_whatever_the_umask(tmp_path):
    old = os.umask(0o000)
    try:
        _, path, _ = stored_or_new_key(tmp_path / "data")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
