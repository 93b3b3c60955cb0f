"""`sipbridge serve --workers 2`: real processes on one HTTP port, one phone, one command at a time.

The simulated phone takes 30 ms per command and answers Poly 4001 "busy" to a NOTIFY that
arrives while another runs, exactly as a Poly phone refuses a parallel request. Commands sent
from many connections at once land on both workers (the kernel spreads connections), so
only the per-phone lock shared by the workers keeps them from overlapping at the phone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from sipbridge.sim import SimPhone, SimPhoneServer
from tests.helpers import free_port

KEY = "workers-test-key-0123456789"
HEADERS = {"Authorization": f"Bearer {KEY}"}


async def _start_gateway(tmp_path: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    http_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPBRIDGE_")}
    env.update(
        SIPBRIDGE_HTTP_PORT=str(http_port),
        SIPBRIDGE_SIP_PORT="0",  # every worker's UA on a free port of its own
        SIPBRIDGE_LISTEN_PORT=str(free_port()),
        SIPBRIDGE_DATA_DIR=str(tmp_path / "data"),
        SIPBRIDGE_API_KEYS=KEY,
        SIPBRIDGE_WORKERS=str(workers),
        SIPBRIDGE_SUBSCRIBE_DIALOGS="none",
        # 24 commands at once may all land on one worker (SO_REUSEPORT hashing): no 429.
        SIPBRIDGE_PHONE_QUEUE_LIMIT="64",
    )
    with (tmp_path / "gateway.log").open("wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "sipbridge", "serve"], env=env, stdout=log, stderr=log
        )
    base = f"http://127.0.0.1:{http_port}"
    await _wait_for_workers(base, workers, process)
    return process, base


async def _wait_for_workers(base: str, workers: int, process: subprocess.Popen[bytes]) -> None:
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        while len(seen) < workers:
            assert process.poll() is None, "the gateway exited"
            assert time.monotonic() < deadline, f"only workers {seen} answered"
            try:
                async with http.get(f"{base}/v1/health") as response:
                    seen.add((await response.json())["worker"])
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError("the gateway did not stop on SIGTERM") from None


@pytest.fixture
async def phone():
    server = SimPhoneServer(SimPhone("1001"), processing_time=0.03)
    server.phone.add_call(call_id="call-1@test", remote="sip:2001@test", state="connected")
    await server.start()
    yield server
    await server.stop()


async def test_two_workers_never_send_one_phone_two_commands_at_once(tmp_path, phone):
    process, base = await _start_gateway(tmp_path, workers=2)
    try:
        async with aiohttp.ClientSession(headers=HEADERS) as http:
            put = {"contact": phone.contact, "expires": 3600}
            async with http.put(f"{base}/v1/phones/1001", json=put) as response:
                assert response.status == 200, await response.text()
            call = {"phone": "1001"}
            async with http.put(f"{base}/v1/calls/call-1@test", json=call) as response:
                assert response.status == 200, await response.text()

        # 24 commands at once, each on a connection of its own, so both workers get some.
        async def dtmf(digit: int) -> int:
            connector = aiohttp.TCPConnector(force_close=True)
            async with aiohttp.ClientSession(headers=HEADERS, connector=connector) as http:
                url = f"{base}/v1/calls/call-1@test/dtmf"
                async with http.post(url, json={"digits": str(digit)}) as response:
                    return response.status

        statuses = await asyncio.gather(*(dtmf(i % 10) for i in range(24)))
    finally:
        _stop(process)

    assert statuses == [200] * 24
    # Every NOTIFY reached the phone alone: a second one during the 30 ms would be 4001.
    assert [r.status for r in phone.phone.received] == [200] * 24
    assert sorted(phone.phone.calls["call-1@test"].dtmf) == sorted(str(i % 10) for i in range(24))
    # ... and they came from both workers' user agents (different Via sent-by ports).
    senders = Counter(via.split()[1].split(";")[0] for via in phone.vias)
    assert len(senders) == 2, senders
    assert process.returncode == 0
    log = (tmp_path / "gateway.log").read_text()
    assert "worker 1 started" in log and "Traceback" not in log


async def test_a_worker_that_dies_is_started_again(tmp_path):
    process, base = await _start_gateway(tmp_path, workers=2)
    try:
        children = subprocess.run(
            ["pgrep", "-P", str(process.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        assert len(children) == 1, children
        os.kill(int(children[0]), signal.SIGKILL)
        # Worker 0 notices, waits a second and starts worker 1 again.
        deadline = time.monotonic() + 20
        while True:
            again = subprocess.run(
                ["pgrep", "-P", str(process.pid)], capture_output=True, text=True, check=False
            ).stdout.split()
            if again and again != children:
                break
            assert time.monotonic() < deadline, "worker 1 was not restarted"
            await asyncio.sleep(0.1)
        await _wait_for_workers(base, 2, process)
    finally:
        _stop(process)
    log = (tmp_path / "gateway.log").read_text()
    assert "worker 1 (pid" in log and "restarting" in log


def test_workers_need_fixed_ports(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPBRIDGE_")}
    env.update(SIPBRIDGE_WORKERS="2", SIPBRIDGE_HTTP_PORT="0", SIPBRIDGE_DATA_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "sipbridge", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "fixed http_port and listen_port" in done.stderr
    assert "Traceback" not in done.stderr
