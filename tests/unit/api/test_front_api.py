"""The front API over a fake SIP sender: contract, status mapping, bad input, no side effects."""

import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sipbridge.api import create_app
from sipbridge.config import Settings
from sipbridge.sip.action_uri import OutgoingRequest, SipAnswer
from sipbridge.sip.sender import FakeSender

KEY = "unit-test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}
CALL_ID = "0a1b2c3d-4e5f6071-8293a4b5@10.0.0.5"


class Phone:
    """What the fake sender answers: a status per test."""

    def __init__(self) -> None:
        self.status, self.reason = 200, "OK"

    def __call__(self, request: OutgoingRequest) -> SipAnswer:
        return SipAnswer(status=self.status, reason=self.reason, from_wire=True)


@pytest.fixture
def phone():
    return Phone()


@pytest.fixture
def sender(phone):
    return FakeSender(phone)


@pytest.fixture
async def client(tmp_path, sender):
    settings = Settings(api_keys=(KEY,), data_dir=tmp_path, command_deadline=1, listen_port=0)
    app = create_app(settings, sender_factory=lambda _: sender)
    async with TestClient(TestServer(app)) as client:
        yield client


async def setup_call(client, call_id=CALL_ID, phone="1001", state="connected"):
    response = await client.put(
        f"/v1/phones/{phone}", json={"contact": f"sip:{phone}@10.0.0.5:5060"}, headers=AUTH
    )
    assert response.status == 200, await response.text()
    response = await client.put(
        f"/v1/calls/{call_id}", json={"phone": phone, "state": state}, headers=AUTH
    )
    assert response.status == 200, await response.text()


async def problem(response, status):
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    return body


async def test_hold_sends_one_notify_and_returns_the_result(client, sender):
    await setup_call(client)
    response = await client.post(f"/v1/calls/{CALL_ID}/hold", headers=AUTH)
    assert response.status == 200
    result = await response.json()
    assert result["phone"] == "1001" and result["call_id"] == CALL_ID
    assert result["command_uri"] == "/api/v1/callctrl/holdCall"
    assert (result["transport"], result["sip_status"], result["sip_reason"]) == ("sip", 200, "OK")
    assert result["latency_ms"] >= 0
    [sent] = sender.sent
    assert sent.target_uri == "sip:1001@10.0.0.5:5060"
    assert ("Event", "ACTION-URI") in sent.headers
    assert sent.content_type == "application/json"
    assert json.loads(sent.body) == {
        "command-URI": "/api/v1/callctrl/holdCall",
        "data": {"Ref": CALL_ID},
    }
    call = await (await client.get(f"/v1/calls/{CALL_ID}", headers=AUTH)).json()
    assert call["state"] == "held"


@pytest.mark.parametrize(
    ("action", "body", "data"),
    [
        ("transfer", {"destination": "1002"}, {"Ref": CALL_ID, "TransferDest": "1002"}),
        ("dtmf", {"digits": "12#"}, {"Digits": "12#"}),
        ("mute", None, {"state": "1"}),
        ("unmute", None, {"state": "0"}),
        ("answer", None, {"Ref": CALL_ID}),
        ("join", None, {}),
    ],
)
async def test_actions_compose_their_poly_data(client, sender, action, body, data):
    await setup_call(client)
    # The call is connected: answer composes its data only past the state guard.
    force = "?force=true" if action == "answer" else ""
    response = await client.post(
        f"/v1/calls/{CALL_ID}/{action}{force}", json=body, headers=AUTH
    )
    assert response.status == 200, await response.text()
    assert json.loads(sender.sent[-1].body)["data"] == data


async def test_warm_transfer_needs_the_other_call_on_the_same_phone(client, sender):
    await setup_call(client, "a@h")
    await setup_call(client, "b@h")
    await setup_call(client, "c@h", phone="1002")
    response = await client.post(
        "/v1/calls/a@h/warm-transfer", json={"other_call_id": "c@h"}, headers=AUTH
    )
    body = await problem(response, 422)
    assert body["errors"][0]["field"] == "other_call_id"
    response = await client.post(
        "/v1/calls/a@h/warm-transfer", json={"other_call_id": "b@h"}, headers=AUTH
    )
    assert response.status == 200
    assert json.loads(sender.sent[-1].body)["data"] == {"Ref-A": "a@h", "Ref-B": "b@h"}
    for call_id in ("a@h", "b@h"):
        await problem(await client.get(f"/v1/calls/{call_id}", headers=AUTH), 404)


async def test_phone_refusal_is_502_with_its_status_and_nothing_changes(client, sender, phone):
    await setup_call(client)
    phone.status, phone.reason = 403, "Forbidden"
    body = await problem(await client.post(f"/v1/calls/{CALL_ID}/end", headers=AUTH), 502)
    assert (body["sip_status"], body["sip_reason"]) == (403, "Forbidden")
    assert body["phone"] == "1001" and body["call_id"] == CALL_ID
    call = await (await client.get(f"/v1/calls/{CALL_ID}", headers=AUTH)).json()
    assert call["state"] == "connected"


@pytest.mark.parametrize(
    ("status", "reason", "http_status", "outcome"),
    [
        (302, "Moved Temporarily", 502, "PhoneRejected"),
        (486, "Busy Here", 502, "PhoneRejected"),
        # A phone's 503 says "try later": 503 with its Retry-After (issue #14 item 7).
        (503, "Service Unavailable", 503, "PhoneUnavailable"),
        (603, "Decline", 502, "PhoneRejected"),
    ],
)
async def test_a_phone_answering_any_final_non_2xx_is_an_error_and_nothing_changes(
    client, sender, phone, status, reason, http_status, outcome
):
    await setup_call(client)
    phone.status, phone.reason = status, reason
    body = await problem(
        await client.post(f"/v1/calls/{CALL_ID}/hold", headers=AUTH), http_status
    )
    assert (body["sip_status"], body["sip_reason"]) == (status, reason)
    call = await (await client.get(f"/v1/calls/{CALL_ID}", headers=AUTH)).json()
    assert call["state"] == "connected"
    [entry] = (await (await client.get("/v1/commands", headers=AUTH)).json())["commands"]
    assert (entry["outcome"], entry["status"]) == (outcome, status)


async def test_raw_command_and_dial(client, sender):
    await setup_call(client)
    response = await client.post(
        "/v1/phones/1001/commands",
        json={"command_uri": "/api/v1/callctrl/holdCall", "data": {"Ref": CALL_ID}},
        headers=AUTH,
    )
    assert response.status == 200
    response = await client.post(
        "/v1/phones/1001/dial", json={"destination": "sip:2000@pbx", "type": "SIP"}, headers=AUTH
    )
    assert response.status == 200
    assert json.loads(sender.sent[-1].body)["data"] == {"Dest": "sip:2000@pbx", "Type": "SIP"}


async def test_bad_input_statuses(client, sender):
    await setup_call(client)
    url = f"/v1/calls/{CALL_ID}/transfer"
    await problem(
        await client.post(url, data=b"{nope", headers={**AUTH, "Content-Type": "application/json"}),
        400,
    )
    await problem(
        await client.post(
            url, data=b"destination=1", headers={**AUTH, "Content-Type": "text/plain"}
        ),
        415,
    )
    await problem(await client.post(f"/v1/calls/{CALL_ID}/explode", headers=AUTH), 404)
    body = await problem(await client.post(url, json={}, headers=AUTH), 422)
    assert body["errors"][0]["field"] == "destination"
    body = await problem(
        await client.post(url, json={"destination": "1\r\nX: y"}, headers=AUTH), 422
    )
    assert body["errors"][0]["field"] == "destination"
    await problem(await client.post(url, json={"destination": "1" * 100_000}, headers=AUTH), 413)
    await problem(await client.post(url, json={"destination": "1"}), 401)
    await problem(
        await client.post(
            url, json={"destination": "1"}, headers={"Authorization": "Bearer wrong-key-000"}
        ),
        401,
    )
    await problem(await client.post("/v1/calls/nope@h/hold", headers=AUTH), 404)
    await problem(await client.post("/v1/calls/bad%20id/hold", headers=AUTH), 422)
    await problem(await client.get("/v1/nothing", headers=AUTH), 404)
    await problem(await client.patch("/v1/phones", headers=AUTH), 405)
    assert sender.sent == []
    call = await (await client.get(f"/v1/calls/{CALL_ID}", headers=AUTH)).json()
    assert call["state"] == "connected"


@pytest.mark.parametrize("encoded", ["abc%0D%0AX:y", "abc%0AX:y", "abc%0DX:y"])
async def test_a_call_id_with_cr_lf_and_no_space_is_refused_in_the_path(client, sender, encoded):
    # Issue #23 item 8: refused for the CR/LF itself, not for a space beside it.
    await setup_call(client)
    for method, path, kwargs in [
        ("PUT", f"/v1/calls/{encoded}", {"json": {"phone": "1001"}}),
        ("GET", f"/v1/calls/{encoded}", {}),
        ("DELETE", f"/v1/calls/{encoded}", {}),
        ("POST", f"/v1/calls/{encoded}/hold", {}),
    ]:
        response = await client.request(method, path, headers=AUTH, **kwargs)
        body = await problem(response, 422)
        assert body["errors"][0]["field"] == "call_id", (method, body)
    assert sender.sent == []
    calls = await (await client.get("/v1/calls", headers=AUTH)).json()
    assert [c["call_id"] for c in calls["calls"]] == [CALL_ID]


async def test_raw_command_rules(client, sender):
    await setup_call(client)
    response = await client.post(
        "/v1/phones/1001/commands",
        json={"command_uri": "dial", "data": {"Dest": "1"}, "pad": "x"},
        headers=AUTH,
    )
    assert (await problem(response, 422))["errors"][0]["field"] == "pad"
    body = {"command_uri": "/api/v1/callctrl/nothing", "data": {}}
    response = await client.post("/v1/phones/1001/commands", json=body, headers=AUTH)
    assert (await problem(response, 422))["errors"][0]["field"] == "command_uri"
    body = {"command_uri": "sendDTMF", "data": {"Digits": "1" * 21_000}}
    await problem(await client.post("/v1/phones/1001/commands", json=body, headers=AUTH), 413)
    await problem(
        await client.post(
            "/v1/phones/9999/commands", json=body | {"data": {"Digits": "1"}}, headers=AUTH
        ),
        404,
    )
    assert sender.sent == []


async def test_feed_validates_contacts(client):
    for contact in ("http://x", "sip:1001@10.0.0.5\r\nX: y", "not a uri", "sip:@", "sip:a@b:99999"):
        response = await client.put("/v1/phones/1001", json={"contact": contact}, headers=AUTH)
        body = await problem(response, 422)
        assert body["errors"][0]["field"] == "contact"
    await problem(await client.put("/v1/calls/x@y", json={"phone": "9999"}, headers=AUTH), 404)


async def test_a_contact_outside_phone_networks_is_422_and_nothing_is_stored(client, sender):
    """Issue #14 item 3: the default phone_networks are loopback and private ranges."""
    for contact in ("sip:1001@192.0.2.1:5060", "sip:1001@8.8.8.8", "sip:1001@[2001:db8::1]"):
        response = await client.put("/v1/phones/1001", json={"contact": contact}, headers=AUTH)
        body = await problem(response, 422)
        assert body["errors"][0]["field"] == "contact"
        assert "outside phone_networks" in body["errors"][0]["message"]
    await problem(await client.get("/v1/phones/1001", headers=AUTH), 404)
    assert sender.sent == []


@pytest.mark.parametrize(
    "contact",
    [
        "sip:1001@169.254.169.254",  # a cloud metadata service
        "sip:1001@[::ffff:192.0.2.1]",  # IPv4-mapped: judged as the IPv4 address
        "sip:1001@0.0.0.0",
        "sip:1001@255.255.255.255",
        "sip:1001@224.0.0.1;transport=udp",
        "sip:1001@[::]",
        "sips:1001@[fe80::1]:5061",
    ],
)
async def test_hostile_contacts_are_refused_with_422_never_500(client, sender, contact):
    response = await client.put("/v1/phones/1001", json={"contact": contact}, headers=AUTH)
    body = await problem(response, 422)
    assert body["errors"][0]["field"] == "contact"
    assert sender.sent == []


async def test_tcp_contact_sets_transport(client, sender):
    await client.put(
        "/v1/phones/1001", json={"contact": "sip:1001@10.0.0.5:5060;transport=tcp"}, headers=AUTH
    )
    phone = await (await client.get("/v1/phones/1001", headers=AUTH)).json()
    assert phone["transport"] == "tcp" and phone["aor"] == "sip:1001@10.0.0.5"


async def test_openapi_is_public_and_lists_every_action(client):
    response = await client.get("/v1/openapi.json")
    assert response.status == 200
    doc = await response.json()
    assert doc["openapi"].startswith("3.")
    for action in ("hold", "resume", "warm-transfer", "dtmf", "unmute"):
        assert f"/v1/calls/{{call_id}}/{action}" in doc["paths"]
    assert "CommandResultOut" in doc["components"]["schemas"]
