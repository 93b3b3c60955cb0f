"""Issue #14 item 1 as reported: `sipbridge serve` with the system's resolver configuration
(/etc/resolv.conf, bind-mounted in a private mount namespace) naming a DNS server that never
answers. Before, pjsip's blocking getaddrinfo held the event loop ~10 s (glibc: 5 s x 2 tries)."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import aiohttp
import pytest

from tests.dns_server import start_dns
from tests.helpers import SippPhone, free_port

KEY = "namespace-key-1234"
AUTH = {"Authorization": f"Bearer {KEY}"}
STALL_BOUND = 0.5


def _can_unshare_mounts() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _can_unshare_mounts(), reason="needs unshare -m (root or CAP_SYS_ADMIN)"
)


async def _healthy(session: aiohttp.ClientSession, base: str, process) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "sipbridge serve exited"
        try:
            async with session.get(f"{base}/v1/health") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("sipbridge serve did not become healthy")


async def _timed(coroutine):
    started = time.monotonic()
    result = await coroutine
    return result, time.monotonic() - started


async def test_serve_with_a_silent_system_dns_keeps_serving_other_phones(tmp_path):
    # resolv.conf cannot name a port: a random loopback address on port 53 (no collision
    # with other tests, and none with a real resolver).
    address = f"127.{random.randint(64, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
    silent = await start_dns(silent=True, host=address, port=53)
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(f"nameserver {address}\noptions timeout:5 attempts:2\n")
    phone = SippPhone(scenario="phone_ok.xml", port=free_port(), workdir=tmp_path, calls=3)
    phone.start()
    http_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPBRIDGE_")}
    env |= {
        "SIPBRIDGE_HTTP_PORT": str(http_port),
        "SIPBRIDGE_SIP_PORT": str(free_port()),
        "SIPBRIDGE_LISTEN_PORT": str(free_port()),
        "SIPBRIDGE_API_KEYS": KEY,
        "SIPBRIDGE_DATA_DIR": str(tmp_path / "data"),
        "SIPBRIDGE_COMMAND_DEADLINE": "5",
    }
    process = subprocess.Popen(
        [
            "unshare", "-m", "--", "sh", "-c",
            'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"',
            "sh", str(resolv), sys.executable, "-m", "sipbridge", "serve",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{http_port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            await _healthy(session, base, process)
            for phone_id, contact, call_id in (
                ("9000", "sip:9000@no-such-host.invalid", "dead-1@127.0.0.1"),
                ("1001", phone.contact, "live-1@127.0.0.1"),
            ):
                async with session.put(
                    f"{base}/v1/phones/{phone_id}", json={"contact": contact}, headers=AUTH
                ) as response:
                    assert response.status == 200, await response.text()
                async with session.put(
                    f"{base}/v1/calls/{call_id}", json={"phone": phone_id}, headers=AUTH
                ) as response:
                    assert response.status == 200, await response.text()

            async def post(path: str) -> tuple[int, dict[str, object]]:
                async with session.post(base + path, headers=AUTH) as response:
                    return response.status, await response.json()

            async def get(path: str) -> int:
                async with session.get(base + path) as response:
                    return response.status

            doomed = asyncio.create_task(_timed(post("/v1/calls/dead-1@127.0.0.1/hold")))
            await asyncio.sleep(0.2)
            stalls = []
            for action in ("hold", "resume", "hold"):
                status, took = await _timed(get("/v1/health"))
                assert status == 200
                stalls.append(took)
                (status, body), took = await _timed(post(f"/v1/calls/live-1@127.0.0.1/{action}"))
                assert status == 200, body
                stalls.append(took)
            (status, body), took = await doomed
            assert max(stalls) < STALL_BOUND, f"the loop stalled: {stalls}"
            assert status == 504, body
            assert body["type"].endswith("phone-dns-timeout")
            assert took < 5.0, f"the 5 s deadline was not kept: {took:.1f} s"
            assert silent.queries, "the system's nameserver (resolv.conf) was asked"
        assert phone.finish() == 0
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        phone.kill()
        silent.close()
