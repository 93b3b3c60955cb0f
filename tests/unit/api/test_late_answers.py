"""A phone answering after the caller's deadline: what the 504 says, what the tracker and the
command log make of the late answer (issue #14, item 2), over a fake sender the test answers."""

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sipbridge.api import create_app
from sipbridge.config import Settings
from sipbridge.sip.action_uri import OutgoingRequest, SipAnswer
from tests.unit.api.test_front_api import AUTH, CALL_ID, KEY, setup_call


class AnsweredByTheTest:
    """A sender whose answers the test gives, one at a time, in the order requests left."""

    local_contact = "sip:sipbridge@127.0.0.1:5070"

    def __init__(self) -> None:
        self.sent: list[OutgoingRequest] = []
        self.pending: list[asyncio.Future[SipAnswer]] = []

    def start(self) -> None:
        pass  # nothing of its own to bind

    def stop(self) -> None:
        pass

    async def send(self, request: OutgoingRequest) -> SipAnswer:
        self.sent.append(request)
        answer: asyncio.Future[SipAnswer] = asyncio.get_running_loop().create_future()
        self.pending.append(answer)
        return await answer

    def answer(self, status: int, reason: str) -> None:
        self.pending.pop(0).set_result(SipAnswer(status=status, reason=reason, from_wire=True))


@pytest.fixture
def sender():
    return AnsweredByTheTest()


@pytest.fixture
async def client(tmp_path, sender):
    settings = Settings(api_keys=(KEY,), data_dir=tmp_path, command_deadline=1, listen_port=0)
    app = create_app(settings, sender_factory=lambda _: sender)
    async with TestClient(TestServer(app)) as client:
        yield client


async def hold_entry(client, want_late: bool = True):
    for _ in range(200):
        page = await (await client.get("/v1/commands", headers=AUTH)).json()
        holds = [c for c in page["commands"] if c["command_uri"].endswith("holdCall")]
        if holds and (holds[0]["late_outcome"] or not want_late):
            return holds[0]
        await asyncio.sleep(0.01)
    raise AssertionError("the hold's late outcome never reached the command log")


async def test_504_says_sent_and_a_late_2xx_holds_the_call(client, sender):
    await setup_call(client)
    hold = asyncio.create_task(client.post(f"/v1/calls/{CALL_ID}/hold", headers=AUTH))
    while not sender.sent:
        await asyncio.sleep(0.01)
    dtmf = asyncio.create_task(
        client.post(f"/v1/calls/{CALL_ID}/dtmf", json={"digits": "1"}, headers=AUTH)
    )
    held, queued = await hold, await dtmf
    assert (held.status, (await held.json())["sent"]) == (504, True)
    assert (queued.status, (await queued.json())["sent"]) == (504, False)
    assert len(sender.sent) == 1  # the DTMF never left: the hold was still unanswered
    entry = await hold_entry(client, want_late=False)
    assert (entry["outcome"], entry["sent"], entry["late_outcome"]) == ("PhoneTimeout", True, None)
    call = await (await client.get(f"/v1/calls/{CALL_ID}", headers=AUTH)).json()
    assert call["state"] == "connected"

    sender.answer(200, "OK")

    entry = await hold_entry(client)
    assert (entry["late_outcome"], entry["late_status"], entry["late_reason"]) == ("ok", 200, "OK")
    assert entry["late_latency_ms"] >= 1000
    call = await (await client.get(f"/v1/calls/{CALL_ID}", headers=AUTH)).json()
    assert call["state"] == "held"
    page = await (await client.get("/v1/commands", headers=AUTH)).json()
    [dtmf_entry] = [c for c in page["commands"] if c["command_uri"].endswith("sendDTMF")]
    assert (dtmf_entry["sent"], dtmf_entry["late_outcome"]) == (False, None)


async def test_a_late_refusal_is_logged_and_changes_nothing(client, sender):
    await setup_call(client)
    response = await client.post(f"/v1/calls/{CALL_ID}/hold", headers=AUTH)
    assert (response.status, (await response.json())["sent"]) == (504, True)

    sender.answer(486, "Busy Here")

    entry = await hold_entry(client)
    assert (entry["late_outcome"], entry["late_status"]) == ("PhoneRejected", 486)
    call = await (await client.get(f"/v1/calls/{CALL_ID}", headers=AUTH)).json()
    assert call["state"] == "connected"
    # The lane is free again: the next command leaves at once.
    resume = asyncio.create_task(client.post(f"/v1/calls/{CALL_ID}/resume?force=true", headers=AUTH))
    while len(sender.sent) < 2:
        await asyncio.sleep(0.01)
    sender.answer(200, "OK")
    assert (await resume).status == 200
