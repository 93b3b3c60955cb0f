"""A PBX controls phones through sipbridge over SIP alone: ACTION-URI NOTIFY in, relayed out."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request
from typing import Any

import pytest

from sipbridge.api import keys
from sipbridge.sim import SimPhone, SimPhoneServer
from sipbridge.sip.message import Headers, SipRequest, SipResponse, parse_message, serialize
from tests.helpers import SCENARIOS, Kamailio, SippPhone, free_port, run_sipp_uac
from tests.integration.conftest import AUTH

HOLD = '{"command-URI":"/api/v1/callctrl/holdCall","data":{"Ref":"%s"}}'


@pytest.fixture
def relay_gateway(gateway_factory):
    """A gateway (no dialog subscriptions) and its SIP listener's port."""

    async def make(**overrides):
        client = await gateway_factory(subscribe_dialogs="none", **overrides)
        return client, client.server.app[keys.LISTENER].port

    return make


@pytest.fixture
async def sim_phone():
    servers: list[SimPhoneServer] = []

    async def start(processing_time: float = 0.0):
        server = SimPhoneServer(SimPhone("1001"), processing_time=processing_time)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


class Pbx:
    """A minimal PBX-side UAC on a UDP socket: sends NOTIFYs, collects the responses."""

    def __init__(self, listener_port: int) -> None:
        self.target = ("127.0.0.1", listener_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.count = 0

    def notify(
        self,
        user: str,
        body: bytes,
        *,
        content_type: str = "application/json",
        event: str = "ACTION-URI",
        branch: str | None = None,
    ) -> bytes:
        self.count += 1
        headers = [
            (
                "Via",
                f"SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch or f'z9hG4bK-pbx-{self.count}'}",
            ),
            ("From", "<sip:pbx@127.0.0.1>;tag=pbx"),
            ("To", f"<sip:{user}@127.0.0.1>"),
            ("Call-ID", f"pbx-{self.count}-{time.monotonic_ns()}@127.0.0.1"),
            ("CSeq", "1 NOTIFY"),
            ("Max-Forwards", "70"),
            ("Event", event),
            ("Content-Type", content_type),
        ]
        request = SipRequest(
            method="NOTIFY",
            uri=f"sip:{user}@127.0.0.1:{self.target[1]}",
            headers=Headers(headers),
            body=body,
        )
        return serialize(request)

    async def send(self, data: bytes, timeout: float = 15) -> list[SipResponse]:
        """Send and collect responses up to the final one."""
        self.sock.sendto(data, self.target)
        return await self.collect(timeout)

    async def collect(self, timeout: float = 15) -> list[SipResponse]:
        responses: list[SipResponse] = []
        deadline = time.monotonic() + timeout
        self.sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                raw, _ = await asyncio.to_thread(self.sock.recvfrom, 65535)
            except TimeoutError:
                continue
            response = parse_message(raw)
            assert isinstance(response, SipResponse)
            responses.append(response)
            if response.status >= 200:
                return responses
        raise AssertionError(f"no final response in {timeout} s: {responses}")

    def close(self) -> None:
        self.sock.close()


async def setup_phone(
    client, contact: str, call_id: str = "relay-1@127.0.0.1", ua: str | None = None
):
    body = {"contact": contact} | ({"user_agent": ua} if ua else {})
    assert (await client.put("/v1/phones/1001", json=body, headers=AUTH)).status == 200
    assert (
        await client.put(f"/v1/calls/{call_id}", json={"phone": "1001"}, headers=AUTH)
    ).status == 200


async def test_sipp_pbx_to_sipp_phone_addressed_to_the_phone(relay_gateway, tmp_path):
    client, port = await relay_gateway()
    phone = SippPhone(scenario="phone_ok.xml", port=free_port(), workdir=tmp_path).start()
    try:
        await setup_phone(client, phone.contact)
        result = await asyncio.to_thread(
            run_sipp_uac,
            "pbx_notify.xml",
            f"127.0.0.1:{port}",
            tmp_path,
            keys={"command": HOLD % "relay-1@127.0.0.1"},
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert phone.finish() == 0
        [notify] = phone.received
        assert json.loads(notify.body) == json.loads(HOLD % "relay-1@127.0.0.1")
        # sipbridge's own NOTIFY, not the PBX's: a new transaction from sipbridge's UA.
        assert "pbx" not in (notify.headers.get("From") or "")
    finally:
        phone.kill()
    log = await (await client.get("/v1/commands", headers=AUTH)).json()
    [entry] = log["commands"]
    assert entry["source"].startswith("sip:udp:127.0.0.1:") and entry["outcome"] == "ok"
    assert (entry["phone"], entry["status"]) == ("1001", 200)


async def test_addressed_to_sipbridge_the_phone_is_found_by_call_id(relay_gateway, sim_phone):
    client, port = await relay_gateway()
    server = await sim_phone()
    call = server.phone.add_call()
    await setup_phone(client, server.contact, call.call_id)
    pbx = Pbx(port)
    try:
        responses = await pbx.send(pbx.notify("sipbridge", (HOLD % call.call_id).encode()))
        assert [r.status for r in responses][-1] == 200
        assert call.state == "held"
        # The phone's refusal goes back to the PBX as the phone gave it.
        responses = await pbx.send(pbx.notify("sipbridge", (HOLD % call.call_id).encode()))
        final = responses[-1]
        assert (final.status, final.reason) == (403, "Operation Not Allowed")
    finally:
        pbx.close()
    log = await (await client.get("/v1/commands", headers=AUTH)).json()
    assert [e["outcome"] for e in log["commands"]] == ["PhoneRejected", "ok"]


@pytest.mark.parametrize(
    ("user", "body", "content_type", "status"),
    [
        ("1001", b"hold please", "text/plain", 415),
        ("1001", b"{not json", "application/json", 400),
        ("1001", b"[" + (HOLD % "relay-1@127.0.0.1").encode() * 2 + b"]", "application/json", 400),
        (
            "1001",
            b'{"command-URI":"/api/v1/callctrl/holdCall","data":{},"x":1}',
            "application/json",
            400,
        ),
        ("1001", b" " * 20481, "application/json", 413),
        ("9999", b'{"command-URI":"/api/v1/callctrl/holdCall","data":{}}', "application/json", 404),
        ("sipbridge", (HOLD % "unknown@h").encode(), "application/json", 404),
        ("1001", b'{"command-URI":"/api/v1/callctrl/explode","data":{}}', "application/json", 400),
    ],
)
async def test_refusals_reach_no_phone(relay_gateway, sim_phone, user, body, content_type, status):
    client, port = await relay_gateway()
    server = await sim_phone()
    await setup_phone(client, server.contact)
    pbx = Pbx(port)
    try:
        final = (await pbx.send(pbx.notify(user, body, content_type=content_type)))[-1]
    finally:
        pbx.close()
    assert final.status == status
    assert (final.headers.get("Warning") or "").startswith('399 sipbridge "')
    assert server.phone.received == []


async def test_a_command_the_profile_lacks_is_488(relay_gateway, sim_phone):
    client, port = await relay_gateway()
    server = await sim_phone()
    await setup_phone(client, server.contact, ua="Poly/CCX_350-UA/1.1.0.0101")
    pbx = Pbx(port)
    try:
        final = (await pbx.send(pbx.notify("1001", (HOLD % "relay-1@127.0.0.1").encode())))[-1]
    finally:
        pbx.close()
    assert final.status == 488
    assert server.phone.received == []


async def test_source_not_allowed_is_403_and_audited(relay_gateway, sim_phone):
    client, port = await relay_gateway(sip_allow=("10.0.0.0/8",), sip_stranger_udp="answer")
    server = await sim_phone()
    await setup_phone(client, server.contact)
    pbx = Pbx(port)
    try:
        final = (await pbx.send(pbx.notify("1001", (HOLD % "relay-1@127.0.0.1").encode())))[-1]
    finally:
        pbx.close()
    assert final.status == 403
    assert server.phone.received == []
    assert client.server.app[keys.STORE].audit_records()[0][2] == "forbidden"


async def test_full_queue_is_480_with_retry_after(relay_gateway, sim_phone):
    """One phone's full queue is not sipbridge being down: no 503 (RFC 3261 §16.7 step 6)."""
    client, port = await relay_gateway(phone_queue_limit=1)
    server = await sim_phone(processing_time=1.0)
    call = server.phone.add_call()
    await setup_phone(client, server.contact, call.call_id)
    first, second = Pbx(port), Pbx(port)
    try:
        first.sock.sendto(first.notify("1001", (HOLD % call.call_id).encode()), first.target)
        await asyncio.sleep(0.2)
        busy = (await second.send(second.notify("1001", (HOLD % call.call_id).encode())))[-1]
        assert busy.status == 480 and busy.headers.get("Retry-After")
        assert (await first.collect())[-1].status == 200
    finally:
        first.close()
        second.close()
    assert len(server.phone.received) == 1


async def test_retransmissions_are_absorbed_and_a_slow_phone_gets_504_in_time(
    relay_gateway, tmp_path
):
    """RFC 4320: no 100 Trying over UDP to a non-INVITE (§4.1), no 408 to one (§4.2)."""
    client, port = await relay_gateway(sip_relay_deadline=2.0, command_deadline=10)
    phone = SippPhone(scenario="phone_silent.xml", port=free_port(), workdir=tmp_path).start()
    await setup_phone(client, phone.contact)
    pbx = Pbx(port)
    try:
        request = pbx.notify("1001", (HOLD % "relay-1@127.0.0.1").encode())
        started = time.monotonic()
        pbx.sock.sendto(request, pbx.target)
        for _ in range(3):  # the PBX retransmits (Timer E); sipbridge must not relay again
            await asyncio.sleep(0.3)
            pbx.sock.sendto(request, pbx.target)
        responses = await pbx.collect(timeout=5)
        elapsed = time.monotonic() - started
    finally:
        pbx.close()
        phone.kill()
    statuses = [r.status for r in responses]
    assert statuses == [504], statuses
    assert 1.5 < elapsed < 3.5
    phone.finish()
    log = await (await client.get("/v1/commands", headers=AUTH)).json()
    [entry] = log["commands"]
    assert entry["outcome"] == "PhoneTimeout" and 1500 < entry["latency_ms"] < 3500
    notifies = [r for r in phone.received if r.method == "NOTIFY"]
    # One relayed NOTIFY (pjsua's own retransmissions of it share one branch).
    assert len({r.headers.get("Via") for r in notifies}) == 1


async def test_kamailio_t_uac_wait_as_the_pbx(relay_gateway, sim_phone, tmp_path):
    client, port = await relay_gateway()
    server = await sim_phone()
    call = server.phone.add_call()
    await setup_phone(client, server.contact, call.call_id)
    kamailio = Kamailio(
        port=free_port(),
        listener=f"sip:127.0.0.1:{port}",
        workdir=tmp_path,
        config="pbx-jsonrpc.cfg",
        http_port=free_port(),
    ).start()
    try:
        headers = (
            "From: <sip:pbx@127.0.0.1>\r\nTo: <sip:1001@127.0.0.1>\r\n"
            "Event: ACTION-URI\r\nContent-Type: application/json\r\n"
        )
        rpc = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tm.t_uac_wait",
            "params": [
                "NOTIFY",
                f"sip:1001@127.0.0.1:{port}",
                ".",
                ".",
                headers,
                HOLD % call.call_id,
            ],
        }
        answer = await asyncio.to_thread(
            _post_json, f"http://127.0.0.1:{kamailio.http_port}/RPC", rpc
        )
    finally:
        kamailio.stop()
    code, reason = answer["result"][:2]  # tm.t_uac_wait: [status, reason, headers, ...]
    assert (code, reason) == (200, "OK"), answer
    assert call.state == "held"
    assert len(server.phone.received) == 1


def _post_json(url: str, body: dict[str, object]) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.load(response)


def refusing_phone(tmp_path, status: int, reason: str, header: str) -> SippPhone:
    """sipp as a phone that answers one NOTIFY with `status reason` and `header`."""
    template = (SCENARIOS / "phone_refusal.xml").read_text()
    scenario = tmp_path / f"phone_refusal_{status}.xml"
    scenario.write_text(template.replace("STATUS", str(status)))
    return SippPhone(
        scenario=str(scenario),
        port=free_port(),
        workdir=tmp_path,
        keys={"reason": reason, "header": header},
    ).start()


@pytest.mark.parametrize(
    ("status", "reason", "header", "relayed", "kept", "dropped"),
    [
        # One phone's overload must not make sipbridge look down to the PBX (RFC 3261 §16.7).
        (503, "Service Unavailable", "Retry-After: 30", 480, ("Retry-After", "30"), None),
        # The challenge is for sipbridge's NOTIFY; passing it on would be a 401 for the PBX.
        (
            401,
            "Unauthorized",
            'WWW-Authenticate: Digest realm="phone", nonce="abc"',
            403,
            None,
            "WWW-Authenticate",
        ),
        (
            407,
            "Proxy Authentication Required",
            'Proxy-Authenticate: Digest realm="phone", nonce="abc"',
            403,
            None,
            "Proxy-Authenticate",
        ),
        (408, "Request Timeout", "X-Phone: 1", 504, None, None),  # RFC 4320 §4.2
        (405, "Method Not Allowed", "Allow: INVITE, ACK, BYE", 405, ("Allow", "INVITE, ACK, BYE"), None),
        (486, "Busy Here", "Retry-After: 7", 486, ("Retry-After", "7"), None),
    ],
)
async def test_a_phones_refusal_becomes_what_the_pbx_may_get(
    relay_gateway, tmp_path, status, reason, header, relayed, kept, dropped
):
    client, port = await relay_gateway()
    phone = refusing_phone(tmp_path, status, reason, header)
    pbx = Pbx(port)
    try:
        await setup_phone(client, phone.contact)
        final = (await pbx.send(pbx.notify("1001", (HOLD % "relay-1@127.0.0.1").encode())))[-1]
        assert phone.finish() == 0
    finally:
        pbx.close()
        phone.kill()
    assert final.status == relayed, (final.status, final.reason)
    assert (final.headers.get("Warning") or "").startswith('399 sipbridge "')
    if kept is not None:
        assert ", ".join(final.headers.get_all(kept[0])) == kept[1]
    if dropped is not None:
        assert final.headers.get(dropped) is None


async def test_a_phones_503_is_an_http_503_with_its_retry_after(gateway_factory, tmp_path):
    client = await gateway_factory(subscribe_dialogs="none")
    phone = refusing_phone(tmp_path, 503, "Service Unavailable", "Retry-After: 30")
    try:
        await setup_phone(client, phone.contact)
        response = await client.post("/v1/calls/relay-1@127.0.0.1/hold", headers=AUTH)
        assert phone.finish() == 0
    finally:
        phone.kill()
    body = await response.json()
    assert response.status == 503, body
    assert response.headers.get("Retry-After") == "30"
    assert (body["sip_status"], body["type"]) == (503, "urn:sipbridge:problem:phone-unavailable")
