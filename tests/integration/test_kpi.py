"""KPIs and /metrics against a running gateway: the real pjsua2 UA, sipp as the phone, real
SQLite. Counts match the commands sent, the tree is walked from its root, finished intervals
survive a restart, and /metrics parses with prometheus-client's own parser."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import encode_basic_auth
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from sipbridge.api import keys
from sipbridge.config import Settings
from sipbridge.levels import Level
from sipbridge.sim import SimPhone, SimPhoneServer
from sipbridge.tracker import TrackerStore
from sipbridge.tracker.credentials import Credentials
from tests.helpers import SippPhone, free_port
from tests.integration.conftest import AUTH, gateway_settings, register
from tests.integration.test_workers import HEADERS as WORKERS_KEY
from tests.integration.test_workers import _start_gateway as start_workers
from tests.integration.test_workers import _stop as stop_workers

PASSWORD = "kpi-test-password-1"
BASIC = {"Authorization": encode_basic_auth("admin", PASSWORD)}
CALL_ID = "7a1c2b3d-kpi-4e5f@127.0.0.1"
CURRENT = "/api/v1/kpi/current/sipbridge"
HISTORY = "/api/v1/kpi/history/sipbridge"


@pytest.fixture
def sipp(tmp_path):
    phones: list[SippPhone] = []

    def start(scenario: str, calls: int) -> SippPhone:
        phone = SippPhone(scenario=scenario, port=free_port(), workdir=tmp_path, calls=calls)
        phones.append(phone.start())
        return phone

    yield start
    for phone in phones:
        phone.kill()


async def get_json(client, path: str, status: int = 200, headers=BASIC) -> Any:
    response = await client.get(path, headers=headers)
    assert response.status == status, f"{path}: {await response.text()}"
    return await response.json() if status == 200 else None


async def values(client, path: str) -> dict[str, Any]:
    body = await get_json(client, path)
    return {item["id"]: item["value"] for item in body["items"]}


async def send_commands(client, phone: SippPhone, good: int, unknown: int) -> None:
    await register(client, "1001", phone.contact, CALL_ID)
    for n in range(good):
        action = "hold" if n % 2 == 0 else "resume"
        response = await client.post(f"/v1/calls/{CALL_ID}/{action}", headers=AUTH)
        assert response.status == 200, await response.text()
    for _ in range(unknown):
        response = await client.post("/v1/calls/no-such-call@x/hold", headers=AUTH)
        assert response.status == 404


async def test_kpis_count_the_commands_sent(gateway_factory, sipp):
    client = await gateway_factory(admin_password=SecretStr(PASSWORD))
    phone = sipp("phone_ok.xml", calls=4)
    await send_commands(client, phone, good=4, unknown=2)
    assert phone.finish() == 0

    assert await values(client, f"{CURRENT}/commands/global") == {
        "requested": 6, "sent": 4, "succeeded": 4, "failed": 2, "timedOut": 0,
        "queueFull": 0, "lateAnswers": 0,
    }  # fmt: skip
    transports = await get_json(client, f"{CURRENT}/commands/transport")
    assert [item["id"] for item in transports["items"]] == ["sip"]
    assert (await values(client, f"{CURRENT}/commands/transport/sip"))["succeeded"] == 4
    assert (await values(client, f"{CURRENT}/commands/phone/1001"))["requested"] == 4
    latency = await values(client, f"{CURRENT}/latency/global")
    assert latency["count"] == 4
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] < 2_000
    one = await get_json(client, f"{CURRENT}/commands/global/succeeded?detailed=false")
    assert one == {"id": "succeeded", "value": 4}


async def test_the_listener_counts_inbound_sip_by_method(gateway_factory):
    client = await gateway_factory(admin_password=SecretStr(PASSWORD))
    port = client.app[keys.LISTENER].port
    options = (
        "OPTIONS sip:sipbridge@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-kpi-{n}\r\n"
        "From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:sipbridge@127.0.0.1>\r\n"
        "Call-ID: kpi-options-{n}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        probe.setblocking(False)
        own = probe.getsockname()[1]
        for n in range(3):
            probe.sendto(options.format(n=n, port=own).encode(), ("127.0.0.1", port))
            answer = await asyncio.wait_for(loop.sock_recv(probe, 4096), 2)
            assert answer.startswith(b"SIP/2.0 200")
    # The recorder samples the listener each second.
    deadline = time.monotonic() + 5
    while True:
        method = await values(client, f"{CURRENT}/inbound/method/OPTIONS")
        if method["requests"] == 3 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert method == {"requests": 3}
    assert (await values(client, f"{CURRENT}/inbound/status/200"))["responses"] == 3
    assert (await values(client, f"{CURRENT}/inbound/global"))["received"] == 3


async def test_discovery_walks_the_whole_tree(gateway_factory, sipp):
    client = await gateway_factory(admin_password=SecretStr(PASSWORD))
    phone = sipp("phone_ok.xml", calls=1)
    await send_commands(client, phone, good=1, unknown=0)
    root = await get_json(client, "/api/v1/kpi")
    assert [item["id"] for item in root["items"]] == ["current", "history", "interval"]
    # current: every listing answers 200 (or 204: no ids yet), every leaf a value.
    pending, leaves, visited = [f"{CURRENT[: -len('/sipbridge')]}"], [], 0
    while pending and visited < 500:
        path = pending.pop()
        visited += 1
        response = await client.get(path, headers=BASIC)
        assert response.status in (200, 204), f"{path}: {await response.text()}"
        if response.status == 204:
            continue
        body = await response.json()
        if "items" not in body:
            leaves.append(path)
            continue
        for item in body["items"]:
            if "value" in item:
                leaves.append(item["url"])
            else:
                pending.append(item["url"])
    assert not pending
    assert f"{CURRENT}/commands/phone/1001/succeeded" in leaves
    assert f"{CURRENT}/latency/global/p99" in leaves
    assert f"{CURRENT}/registrations/global/active" in leaves
    # Paging a listing with the cursor visits every pm once.
    seen, after = [], None
    for _ in range(20):
        query = "limit=2" + (f"&after={after}" if after else "")
        body = await get_json(client, f"{CURRENT}/commands/global?{query}")
        seen += [item["id"] for item in body["items"]]
        [cursor] = body["cursor"]
        if cursor["after"] == "-1":
            break
        after = cursor["after"]
    assert seen == list(await values(client, f"{CURRENT}/commands/global"))
    # Nothing to show, bad input, unknown nodes.
    await get_json(client, "/api/v1/kpi/interval", 204)
    await get_json(client, f"{HISTORY}/commands/global", 204)
    await get_json(client, f"{CURRENT}/commands/global?limit=0", 422)
    await get_json(client, f"{CURRENT}/commands/global?after=nothing", 422)
    await get_json(client, f"{CURRENT}/commands/global?bogus=1", 422)
    await get_json(client, f"{CURRENT}/commands/global?detailed=maybe", 422)
    await get_json(client, f"{CURRENT}/nothing", 404)
    await get_json(client, "/api/v1/kpi/current/other", 404)
    await get_json(client, f"{CURRENT}/commands/phone/9999", 404)
    await get_json(client, f"{CURRENT}/commands/global/nothing", 404)
    await get_json(client, f"{CURRENT}/commands/global", 401, headers={})


async def finished_total(client, path: str, want: float, within: float = 10.0) -> dict[int, Any]:
    """The pm at `path` in every finished interval, once they add up to `want`."""
    deadline = time.monotonic() + within
    while True:
        response = await client.get(f"{path}?interval=all", headers=BASIC)
        if response.status == 200:
            series = {i["interval"]: i["value"] for i in (await response.json())["items"]}
            if sum(series.values()) == want:
                return series
        assert time.monotonic() < deadline, "the commands never showed in finished intervals"
        await asyncio.sleep(0.2)


async def test_finished_intervals_show_in_history_and_survive_a_restart(gateway_factory, sipp):
    settings = {"admin_password": SecretStr(PASSWORD), "kpi_interval": 1.0}
    client = await gateway_factory(**settings)
    phone = sipp("phone_ok.xml", calls=3)
    await send_commands(client, phone, good=3, unknown=1)
    series = await finished_total(client, f"{HISTORY}/commands/global/requested", 4)
    intervals = (await get_json(client, "/api/v1/kpi/interval"))["intervals"]
    ids = [interval["id"] for interval in intervals]
    assert set(series) <= set(ids) and ids == sorted(ids)
    last = (await get_json(client, "/api/v1/kpi/interval?id=last"))["intervals"]
    assert [i["id"] for i in last] == [ids[-1]]
    assert last[0]["start"] < last[0]["end"]
    newest = await get_json(client, "/api/v1/kpi/interval?limit=1")
    assert [i["id"] for i in newest["intervals"]] == [newest["intervals"][0]["id"]]
    assert newest["cursor"][0]["after"] == "-1"
    busiest = max(series, key=lambda n: series[n])
    in_one = await get_json(client, f"{HISTORY}/commands/global?interval={busiest}")
    assert in_one["interval"] == busiest
    assert {i["id"]: i["value"] for i in in_one["items"]}["requested"] == series[busiest]
    await get_json(client, "/api/v1/kpi/interval?id=999999", 404)
    await get_json(client, "/api/v1/kpi/interval?id=x", 422)
    await get_json(client, f"{HISTORY}/commands/global?interval=999999", 404)
    await get_json(client, f"{HISTORY}/commands/global?interval=all", 422)
    assert phone.finish() == 0
    await client.close()

    restarted = await gateway_factory(**settings)  # same data_dir
    again = await finished_total(restarted, f"{HISTORY}/commands/global/requested", 4)
    assert {n: v for n, v in again.items() if v} == {n: v for n, v in series.items() if v}


def families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample(family: Any, suffix: str, **labels: str) -> float:
    [value] = [
        s.value
        for s in family.samples
        if s.name == family.name + suffix and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    return float(value)


async def test_metrics_count_the_commands_and_need_monitor_credentials(
    gateway_factory, sipp, tmp_path
):
    store = TrackerStore(gateway_settings(tmp_path).database_path)
    try:
        monitor_key = Credentials(store).add_key("scraper", Level.MONITOR)
    finally:
        store.close()
    client = await gateway_factory(admin_password=SecretStr(PASSWORD))
    phone = sipp("phone_ok.xml", calls=2)
    await send_commands(client, phone, good=2, unknown=1)
    assert phone.finish() == 0

    refused = await client.get("/metrics")
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"].startswith("Basic")
    assert (await client.get("/metrics", headers={"Authorization": "Bearer nope"})).status == 401
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {monitor_key}"})
    assert response.status == 200
    assert response.content_type == "text/plain"
    found = families(await response.text())
    commands = found["sipbridge_commands"]
    assert sample(commands, "_total", outcome="ok", transport="sip") == 2
    assert sample(commands, "_total", outcome="UnknownCall", transport="none") == 1
    latency = found["sipbridge_command_latency_seconds"]
    assert sample(latency, "_count", transport="sip") == 2
    assert sample(latency, "_bucket", transport="sip", le="+Inf") == 2
    assert "sipbridge_queue_depth" in found and "sipbridge_pbx_relays" in found
    by_basic = await client.get("/metrics", headers=BASIC)
    assert by_basic.status == 200


async def test_metrics_are_open_to_metrics_allow_networks(gateway_factory):
    client = await gateway_factory(
        admin_password=SecretStr(PASSWORD), metrics_allow=("127.0.0.0/8",)
    )
    response = await client.get("/metrics")
    assert response.status == 200
    assert "sipbridge_commands" in families(await response.text())


async def test_two_workers_sum_their_kpis_and_metrics(tmp_path):
    """`serve --workers 2`: commands land on both workers; the KPIs and /metrics of either
    worker count all of them (the tracker's rows, prometheus-client's multiprocess files)."""
    store = TrackerStore(Settings(data_dir=tmp_path / "data").database_path)
    try:
        Credentials(store).add_user("watcher", Level.MONITOR, PASSWORD)
    finally:
        store.close()
    basic = {"Authorization": encode_basic_auth("watcher", PASSWORD)}
    phone = SimPhoneServer(SimPhone("1001"))
    phone.phone.add_call(call_id="call-1@test", remote="sip:2001@test", state="connected")
    await phone.start()
    process, base = await start_workers(tmp_path, workers=2)
    try:
        async with aiohttp.ClientSession(headers=WORKERS_KEY) as http:
            put = {"contact": phone.contact, "expires": 3600}
            async with http.put(f"{base}/v1/phones/1001", json=put) as response:
                assert response.status == 200, await response.text()
            async with http.put(f"{base}/v1/calls/call-1@test", json={"phone": "1001"}) as r:
                assert r.status == 200, await r.text()

        async def dtmf(digit: int) -> int:  # a connection each: both workers get some
            connector = aiohttp.TCPConnector(force_close=True)
            async with aiohttp.ClientSession(headers=WORKERS_KEY, connector=connector) as http:
                url = f"{base}/v1/calls/call-1@test/dtmf"
                async with http.post(url, json={"digits": str(digit)}) as response:
                    return response.status

        assert await asyncio.gather(*(dtmf(i % 10) for i in range(16))) == [200] * 16
        senders = {via.split()[1].split(";")[0] for via in phone.vias}
        assert len(senders) == 2, "the commands did not reach both workers"
        deadline = time.monotonic() + 15  # the other worker's rows: flushed every 5 s
        connector = aiohttp.TCPConnector(force_close=True)  # ask both workers, by turns
        async with aiohttp.ClientSession(connector=connector) as http:
            while True:
                url = f"{base}{CURRENT}/commands/transport/sip/succeeded"
                async with http.get(url, headers=basic) as response:
                    assert response.status == 200, await response.text()
                    counted = (await response.json())["value"]
                if counted == 16:
                    break
                assert time.monotonic() < deadline, f"KPIs count {counted} of 16 commands"
                await asyncio.sleep(0.5)
            for _ in range(4):  # either worker answers the scrape with the sum
                async with http.get(f"{base}/metrics", headers=WORKERS_KEY) as response:
                    assert response.status == 200
                    found = families(await response.text())
                commands = found["sipbridge_commands"]
                assert sample(commands, "_total", outcome="ok", transport="sip") == 16
                latency = found["sipbridge_command_latency_seconds"]
                assert sample(latency, "_count", transport="sip") == 16
    finally:
        stop_workers(process)
        await phone.stop()
    assert process.returncode == 0
    assert "Traceback" not in (tmp_path / "gateway.log").read_text()
