"""Batch feed routes (PUT /v1/phones, PUT /v1/calls): all items or none, 422 names the bad one."""

import io
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sipbridge.api import create_app
from sipbridge.api.schemas import BATCH_LIMIT
from sipbridge.config import Settings
from sipbridge.sip.action_uri import OutgoingRequest, SipAnswer
from sipbridge.sip.sender import FakeSender

KEY = "unit-test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _ok(_: OutgoingRequest) -> SipAnswer:
    return SipAnswer(status=200, reason="OK", from_wire=True)


@pytest.fixture
async def client(tmp_path):
    settings = Settings(api_keys=(KEY,), data_dir=tmp_path, command_deadline=1, listen_port=0)
    app = create_app(settings, sender_factory=lambda _: FakeSender(_ok))
    async with TestClient(TestServer(app)) as client:
        yield client


def phones(count, start=0):
    return [
        {"id": f"p{n}", "contact": f"sip:p{n}@127.0.0.1:5060", "expires": 600}
        for n in range(start, start + count)
    ]


async def listed(client, what):
    response = await client.get(f"/v1/{what}", headers=AUTH)
    assert response.status == 200
    return (await response.json())[what]


async def test_a_batch_of_phones_and_calls_is_stored_and_resolves(client):
    response = await client.put("/v1/phones", json={"phones": phones(3)}, headers=AUTH)
    assert response.status == 200, await response.text()
    assert await response.json() == {"stored": 3}
    calls = [{"call_id": f"c{n}@h", "phone": f"p{n % 3}", "state": "ringing"} for n in range(5)]
    response = await client.put("/v1/calls", json={"calls": calls}, headers=AUTH)
    assert response.status == 200, await response.text()
    assert await response.json() == {"stored": 5}
    assert [p["id"] for p in await listed(client, "phones")] == ["p0", "p1", "p2"]
    response = await client.get("/v1/calls/c4@h", headers=AUTH)
    assert (await response.json())["phone"] == "p1"
    # The batch and the single route agree on the derived fields.
    response = await client.get("/v1/phones/p2", headers=AUTH)
    assert (await response.json())["aor"] == "sip:p2@127.0.0.1"
    response = await client.post("/v1/calls/c4@h/answer", headers=AUTH)  # it rings
    assert response.status == 200, await response.text()


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"id": "p 9", "contact": "sip:x@h"}, "phones.2.id"),
        ({"id": "p9", "contact": "http://x"}, "phones.2.contact"),
        ({"id": "p9", "contact": "sip:x@h;transport=sctp"}, "phones.2.contact"),
        ({"id": "p9", "contact": "sip:x@h", "surprise": 1}, "phones.2.surprise"),
        # Issue #14 item 3: an address outside phone_networks (default: private ranges).
        ({"id": "p9", "contact": "sip:p9@192.0.2.1:5060"}, "phones.2.contact"),
    ],
)
async def test_a_bad_phone_in_a_batch_writes_nothing(client, bad, field):
    batch = [*phones(2), bad, *phones(2, start=5)]
    response = await client.put("/v1/phones", json={"phones": batch}, headers=AUTH)
    assert response.status == 422, await response.text()
    assert [e["field"] for e in (await response.json())["errors"]] == [field]
    assert await listed(client, "phones") == []


async def test_a_call_on_an_unknown_phone_in_a_batch_writes_nothing(client):
    await client.put("/v1/phones", json={"phones": phones(1)}, headers=AUTH)
    calls = [
        {"call_id": "c1@h", "phone": "p0"},
        {"call_id": "c2@h", "phone": "p0"},
        {"call_id": "c3@h", "phone": "nobody"},
    ]
    response = await client.put("/v1/calls", json={"calls": calls}, headers=AUTH)
    assert response.status == 422, await response.text()
    [error] = (await response.json())["errors"]
    assert error["field"] == "calls.2.phone" and "nobody" in error["message"]
    assert await listed(client, "calls") == []
    bad_id = [{"call_id": "c1@h", "phone": "p0"}, {"call_id": "bad id", "phone": "p0"}]
    response = await client.put("/v1/calls", json={"calls": bad_id}, headers=AUTH)
    assert response.status == 422
    assert (await response.json())["errors"][0]["field"] == "calls.1.call_id"
    assert await listed(client, "calls") == []


async def test_batch_size_is_bounded_and_empty_batches_are_refused(client):
    too_many = phones(BATCH_LIMIT + 1)
    response = await client.put("/v1/phones", json={"phones": too_many}, headers=AUTH)
    assert response.status == 422
    response = await client.put("/v1/phones", json={"phones": []}, headers=AUTH)
    assert response.status == 422
    huge = json.dumps({"phones": [{"id": "p1", "contact": "sip:p1@h", "user_agent": "x" * 2**21}]})
    headers = {**AUTH, "Content-Type": "application/json"}
    response = await client.put("/v1/phones", data=io.BytesIO(huge.encode()), headers=headers)
    assert response.status == 413
    assert await listed(client, "phones") == []


async def test_a_full_batch_fits_and_single_routes_keep_the_20_kb_limit(client):
    response = await client.put("/v1/phones", json={"phones": phones(BATCH_LIMIT)}, headers=AUTH)
    assert response.status == 200, await response.text()
    assert len(await listed(client, "phones")) == BATCH_LIMIT
    big = {"contact": "sip:p1@h", "user_agent": "x" * 30_000}
    response = await client.put("/v1/phones/p1", json=big, headers=AUTH)
    assert response.status == 413


async def test_batches_need_the_api_key(client):
    response = await client.put("/v1/phones", json={"phones": phones(1)})
    assert response.status == 401


@pytest.mark.parametrize("call_id", ["abc\r\nX:y", "abc\nX:y", "abc\rX:y"])
async def test_a_call_id_with_cr_lf_and_no_space_is_refused_in_a_batch(client, call_id):
    # Issue #23 item 8: refused for the CR/LF itself, not for a space beside it.
    await client.put("/v1/phones", json={"phones": phones(1)}, headers=AUTH)
    calls = [{"call_id": "ok@h", "phone": "p0"}, {"call_id": call_id, "phone": "p0"}]
    response = await client.put("/v1/calls", json={"calls": calls}, headers=AUTH)
    assert response.status == 422, await response.text()
    body = await response.json()
    assert body["errors"][0]["field"] == "calls.1.call_id"
    assert await listed(client, "calls") == []


async def test_a_batch_pinning_an_unknown_profile_is_refused_whole(client):
    # Found by the fuzzer: the batch stored the pin, and every command to the phone was a 500.
    phones = [
        {"id": "p1", "contact": "sip:p1@127.0.0.1:5999"},
        {"id": "p2", "contact": "sip:p2@127.0.0.1:5999", "profile": "no-such-profile"},
    ]
    response = await client.put("/v1/phones", json={"phones": phones}, headers=AUTH)
    assert response.status == 422
    assert (await response.json())["errors"][0]["field"] == "phones.1.profile"
    assert (await client.get("/v1/phones/p1", headers=AUTH)).status == 404
