"""`sipbridge hold CALL_ID`, `dtmf`, `send`, `events` as a shell runs them, against a running
gateway and a sipp phone: readable output, --json, exit 0, and 1 with the problem otherwise."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from tests.helpers import SippPhone, free_port
from tests.integration.conftest import API_KEY, AUTH, register

pytestmark = pytest.mark.integration


def cli(gateway, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPBRIDGE_")}
    env["SIPBRIDGE_URL"] = str(gateway.make_url("")).rstrip("/")
    env["SIPBRIDGE_KEY"] = API_KEY
    return subprocess.run(
        [sys.executable, "-m", "sipbridge", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_call_commands_from_the_shell(gateway_factory, tmp_path):
    gateway = await gateway_factory(subscribe_dialogs="none")
    phone = SippPhone(scenario="phone_ok.xml", port=free_port(), workdir=tmp_path, calls=3)
    phone.start()
    try:
        await register(gateway, "1001", phone.contact, "cli-1@h")
        held = await asyncio.to_thread(cli, gateway, "hold", "cli-1@h")
        assert held.returncode == 0, held.stderr
        lines = dict(line.split(":", 1) for line in held.stdout.splitlines())
        assert lines["call_id"].strip() == "cli-1@h" and lines["sip_status"].strip() == "200"
        again = await asyncio.to_thread(cli, gateway, "hold", "cli-1@h")
        assert again.returncode == 1
        assert "409" in again.stderr and "Call state conflict" in again.stderr
        dtmf = await asyncio.to_thread(cli, gateway, "dtmf", "cli-1@h", "12#", "--json")
        assert dtmf.returncode == 0, dtmf.stderr
        assert json.loads(dtmf.stdout)["command_uri"] == "/api/v1/callctrl/sendDTMF"
        sent = await asyncio.to_thread(
            cli, gateway, "send", "1001", "holdCall", '{"Ref": "cli-1@h"}', "--json"
        )
        assert sent.returncode == 0, sent.stderr
        assert phone.finish() == 0 and len(phone.received) == 3
    finally:
        phone.kill()
    missing = await asyncio.to_thread(cli, gateway, "end", "nobody@h")
    assert missing.returncode == 1 and "404 Unknown call" in missing.stderr
    bad = await asyncio.to_thread(cli, gateway, "send", "1001", "holdCall", "{not json")
    assert bad.returncode == 2 and "not JSON" in bad.stderr


async def test_events_print_the_backlog_and_filter(gateway_factory):
    gateway = await gateway_factory(subscribe_dialogs="none")
    await register(gateway, "1001", "sip:1001@127.0.0.1:5999", "ev-1@h")
    await gateway.delete("/v1/calls/ev-1@h", headers=AUTH)
    shown = await asyncio.to_thread(cli, gateway, "events", "--since", "0")
    assert shown.returncode == 0, shown.stderr
    kinds = [line.split()[1] for line in shown.stdout.splitlines()]
    assert kinds == ["phone.registered", "call.connected", "call.ended"]
    only = await asyncio.to_thread(
        cli, gateway, "events", "--since", "0", "--type", "call.ended", "--json"
    )
    [event] = [json.loads(line) for line in only.stdout.splitlines()]
    assert (event["type"], event["call_id"]) == ("call.ended", "ev-1@h")
    wrong = await asyncio.to_thread(cli, gateway, "events", "--type", "call.exploded")
    assert wrong.returncode == 1 and "unknown event types" in wrong.stderr


def test_without_a_service_the_exit_is_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPBRIDGE_")}
    env.update({"SIPBRIDGE_URL": f"http://127.0.0.1:{free_port()}", "SIPBRIDGE_KEY": "k" * 16})
    done = subprocess.run(
        [sys.executable, "-m", "sipbridge", "hold", "x@h"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "cannot reach sipbridge" in done.stderr
