"""Catalog, profiles and transport choice through the front API, over a fake SIP sender."""

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sipbridge import catalog
from sipbridge.api import create_app
from sipbridge.config import Settings
from sipbridge.sip.sender import FakeSender

KEY = "unit-test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}
CALL_ID = "0a1b2c3d-4e5f6071-8293a4b5@10.0.0.5"
OTHER = "9a1b2c3d-4e5f6071-8293a4b5@10.0.0.5"


@pytest.fixture
def sender():
    return FakeSender()


@pytest.fixture
async def client(tmp_path, sender):
    settings = Settings(api_keys=(KEY,), data_dir=tmp_path, command_deadline=1, listen_port=0)
    app = create_app(settings, sender_factory=lambda _: sender)
    async with TestClient(TestServer(app)) as client:
        yield client


async def phone(client, user_agent=None, profile=None, phone_id="1001"):
    body = {"contact": f"sip:{phone_id}@10.0.0.5:5060"}
    if user_agent:
        body["user_agent"] = user_agent
    if profile:
        body["profile"] = profile
    response = await client.put(f"/v1/phones/{phone_id}", json=body, headers=AUTH)
    return response.status, await response.json()


async def test_catalog_and_profiles_are_listed(client):
    response = await client.get("/v1/catalog")
    assert response.status == 401
    body = await (await client.get("/v1/catalog", headers=AUTH)).json()
    assert len(body["commands"]) == len(catalog.ALL_COMMANDS)
    [ping] = [c for c in body["commands"] if c["name"] == "ping"]
    assert (ping["http_method"], ping["delivery"], ping["firmware"]) == (
        "POST",
        "http-only",
        "ucs-6",
    )
    assert "Address" in ping["input_schema"]["properties"]
    body = await (await client.get("/v1/profiles", headers=AUTH)).json()
    edge = next(p for p in body["profiles"] if p["name"] == "edge-e-pvos8")
    assert (edge["digest_since"], edge["rest_over_sip_since"]) == ("8.3.0", "8.0.0")


async def test_a_pin_must_name_a_loaded_profile_and_is_shown(client):
    status, problem = await phone(client, profile="vvx-ucs9")
    assert status == 422 and problem["errors"][0]["field"] == "profile"
    status, body = await phone(client, profile="vvx-ucs6")
    assert (status, body["profile"]) == (200, "vvx-ucs6")


async def test_transport_parameter_is_checked(client, sender):
    await phone(client, user_agent="PolycomVVX-VVX_411-UA/6.4.3.5018")
    for path in ("/v1/phones/1001/commands?transport=carrier-pigeon",):
        response = await client.post(path, json={"command_uri": "holdCall"}, headers=AUTH)
        assert response.status == 422
        assert (await response.json())["errors"][0]["field"] == "transport"
    assert sender.sent == []


async def test_refusals_before_anything_is_sent(client, sender):
    await phone(client, user_agent="PolycomVVX-VVX_411-UA/6.4.3.5018")
    for call_id in (CALL_ID, OTHER):
        response = await client.put(f"/v1/calls/{call_id}", json={"phone": "1001"}, headers=AUTH)
        assert response.status == 200
    response = await client.post(
        f"/v1/calls/{CALL_ID}/warm-transfer?transport=http",
        json={"other_call_id": OTHER},
        headers=AUTH,
    )
    problem = await response.json()
    assert response.status == 422 and problem["type"].endswith("transport-unavailable")
    assert "SIP-only" in problem["detail"]
    # A query needs HTTP, and there is no credentials file: 422 saying so.
    response = await client.post(
        "/v1/phones/1001/commands", json={"command_uri": "deviceInfoV2"}, headers=AUTH
    )
    problem = await response.json()
    assert response.status == 422 and "phone_credentials_file" in problem["detail"]
    response = await client.post(
        "/v1/phones/1001/commands?transport=sip", json={"command_uri": "deviceInfoV2"}, headers=AUTH
    )
    assert response.status == 422
    assert sender.sent == []
    # And call control on the same phone still goes out as a NOTIFY.
    response = await client.post(f"/v1/calls/{CALL_ID}/hold", headers=AUTH)
    result = await response.json()
    assert response.status == 200 and result["transport"] == "sip" and result["http_status"] is None
    assert len(sender.sent) == 1


async def test_openapi_knows_the_new_routes_and_result_fields(client):
    document = await (await client.get("/v1/openapi.json")).json()
    assert {"/v1/catalog", "/v1/profiles"} <= set(document["paths"])
    result = document["components"]["schemas"]["CommandResultOut"]["properties"]
    assert {"http_status", "poly_status", "poly_meaning", "data"} <= set(result)
    parameters = document["paths"]["/v1/phones/{phone}/commands"]["post"]["parameters"]
    assert any(p["name"] == "transport" for p in parameters)
