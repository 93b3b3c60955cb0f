"""Idempotency-Key against a running gateway and sipp phones: a retry after a dropped
connection, a replay after a restart, another body under the same key; the phone counts."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import SippPhone, free_port
from tests.integration.conftest import AUTH, register

pytestmark = pytest.mark.integration


async def test_a_retry_after_a_dropped_connection_makes_one_notify(gateway_factory, tmp_path):
    gateway = await gateway_factory(subscribe_dialogs="none")
    # Answers 1.4 s after the NOTIFY arrives (over TCP: no retransmission meanwhile).
    phone = SippPhone(scenario="phone_slow.xml", port=free_port(), workdir=tmp_path, transport="t1")
    phone.start()
    try:
        await register(gateway, "1001", phone.contact.split(";")[0], "i1@h", transport="tcp")
        headers = {**AUTH, "Idempotency-Key": "hold-i1-attempt"}
        first = asyncio.create_task(gateway.post("/v1/calls/i1@h/hold", headers=headers))
        await asyncio.sleep(0.4)
        first.cancel()  # the client gives up: its connection drops mid-command
        with pytest.raises(asyncio.CancelledError):
            await first
        retry = await gateway.post("/v1/calls/i1@h/hold", headers=headers)
        assert retry.status == 200, await retry.text()
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert (await retry.json())["sip_status"] == 200
        again = await gateway.post("/v1/calls/i1@h/hold", headers=headers)
        assert await again.json() == await retry.json()
        assert phone.finish() == 0
        assert len(phone.received) == 1  # one NOTIFY for three requests
    finally:
        phone.kill()


async def test_the_first_answer_survives_a_restart_and_a_new_body_is_refused(
    gateway_factory, tmp_path
):
    phone = SippPhone(
        scenario="phone_ok.xml", port=free_port(), workdir=tmp_path, calls=2
    ).start()
    try:
        gateway = await gateway_factory(subscribe_dialogs="none")
        await register(gateway, "1001", phone.contact, "i2@h")
        headers = {**AUTH, "Idempotency-Key": "dtmf-42"}
        first = await gateway.post(
            "/v1/calls/i2@h/dtmf", json={"digits": "12#"}, headers=headers
        )
        assert first.status == 200, await first.text()
        body = await first.json()
        assert "Idempotent-Replayed" not in first.headers
        await gateway.close()

        gateway = await gateway_factory(subscribe_dialogs="none")
        replayed = await gateway.post(
            "/v1/calls/i2@h/dtmf", json={"digits": "12#"}, headers=headers
        )
        assert replayed.status == 200 and await replayed.json() == body
        other_body = await gateway.post(
            "/v1/calls/i2@h/dtmf", json={"digits": "99"}, headers=headers
        )
        assert other_body.status == 422
        assert "another request" in (await other_body.json())["detail"]
        # Another client's key space is its own: the same key with another credential runs.
        fresh = await gateway.post(
            "/v1/calls/i2@h/dtmf", json={"digits": "12#"}, headers={**AUTH, "Idempotency-Key": "x1"}
        )
        assert fresh.status == 200
        assert phone.finish() == 0
        assert len(phone.received) == 2  # the first and the fresh key; no replay sent anything
    finally:
        phone.kill()


async def test_a_failure_is_replayed_too_and_bad_keys_are_422(gateway_factory):
    gateway = await gateway_factory(subscribe_dialogs="none")
    headers = {**AUTH, "Idempotency-Key": "unknown-call"}
    first = await gateway.post("/v1/calls/nobody@h/hold", headers=headers)
    assert first.status == 404
    second = await gateway.post("/v1/calls/nobody@h/hold", headers=headers)
    assert second.status == 404 and second.headers["Idempotent-Replayed"] == "true"
    assert await second.json() == await first.json()
    for bad in ("", "x" * 256, "has space"):
        response = await gateway.post(
            "/v1/calls/nobody@h/hold", headers={**AUTH, "Idempotency-Key": bad}
        )
        assert response.status == 422, bad
