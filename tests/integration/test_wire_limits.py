"""Large commands in clear SIP and challenged NOTIFYs, against sipp phones.

Real pjsua2 UA, sipbridge's own TCP sender for what pjsua2 cannot carry (over 1,300 bytes,
RFC 3261 §18.1.1), real gateway on loopback; sipp is the phone. The largest bodies are
setConfig's, which never travels in clear SIP (it may carry passwords): their 5 and 19 KB
cases go over TLS, in test_tls.py. In clear SIP the largest body is simulateTextInput's
(a 2,048-character value), sent to the `lab` profile that takes management commands in a
NOTIFY (tests/helpers.py).
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sipbridge.api import create_app
from sipbridge.sip import digest
from sipbridge.sip.stream_sender import wire_sender
from tests.helpers import (
    LAB_USER_AGENT,
    SCENARIOS,
    SippPhone,
    _received_requests,
    free_port,
    lab_profiles,
)
from tests.integration.conftest import (
    AUTH,
    TRANSACTION_TIMEOUT,
    Borrowed,
    gateway_settings,
    register,
)

PASSWORD = "s3cret-phone"


@pytest.fixture
async def wired(tmp_path, user_agent):
    """A gateway on the session's UA behind the same wiring `sipbridge serve` uses."""
    made = []

    async def make(**overrides):
        overrides.setdefault("sip_profiles_dir", lab_profiles(tmp_path / "profiles"))
        settings = gateway_settings(tmp_path, **overrides)
        app = create_app(
            settings,
            sender_factory=lambda _: wire_sender(
                Borrowed(user_agent), transaction_timeout=TRANSACTION_TIMEOUT
            ),
        )
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.fixture
def sipp(tmp_path):
    phones: list[SippPhone] = []

    def start(scenario: str, transport: str = "u1", **kwargs) -> SippPhone:
        phone = SippPhone(
            scenario=scenario, port=free_port(), workdir=tmp_path, transport=transport, **kwargs
        )
        phones.append(phone.start())
        return phone

    yield start
    for phone in phones:
        phone.kill()


def _config_of(size: int) -> dict[str, str]:
    """setConfig data whose NOTIFY body is about `size` bytes (values are at most 2,048)."""
    values, total, index = {}, 40, 0
    while total < size:
        chunk = min(2000, size - total)
        name = f"feature.x{index:02d}.value"
        values[name] = "v" * max(1, chunk - len(name) - 6)
        total += len(name) + len(values[name]) + 6
        index += 1
    return values


def _text_of(size: int) -> dict[str, str]:
    """simulateTextInput data whose NOTIFY body is about `size` bytes (at most ~2,100)."""
    return {"Value": "t" * (size - 60)}


SIP = "/v1/phones/1001/commands?transport=sip"


@pytest.mark.parametrize("size", [1024, 2100])
@pytest.mark.parametrize("registered", ["udp", "tcp"])
async def test_large_command_arrives_whole_over_tcp_when_over_1300_bytes(
    wired, sipp, size, registered
):
    gateway = await wired()
    # Even 1 KB of body makes the message over 1,300 bytes with its headers: TCP, and a phone
    # listens on TCP on the port it registered over UDP (RFC 3261 §18.2.1).
    phone = sipp("phone_large.xml", "t1")
    await register(
        gateway, "1001", phone.contact.split(";")[0], transport=registered,
        user_agent=LAB_USER_AGENT,
    )
    data = _text_of(size)

    response = await gateway.post(
        SIP, json={"command_uri": "simulateTextInput", "data": data}, headers=AUTH
    )

    assert response.status == 200, await response.text()
    assert (await response.json())["sip_status"] == 200
    assert phone.finish() == 0, "sipp's own header checks failed"
    [notify] = phone.received
    assert json.loads(notify.body)["data"] == data, "the body did not arrive whole"
    assert len(notify.body) >= size * 0.95
    via = notify.headers.get("Via") or ""
    assert via.startswith("SIP/2.0/TCP"), via


async def test_large_command_to_a_phone_without_tcp_is_a_quick_502(wired, sipp):
    gateway = await wired()
    phone = sipp("phone_large.xml", "u1")  # UDP only: nothing listens on TCP there
    await register(gateway, "1001", phone.contact, transport="udp", user_agent=LAB_USER_AGENT)
    started = time.monotonic()

    response = await gateway.post(
        SIP, json={"command_uri": "simulateTextInput", "data": _text_of(2100)}, headers=AUTH
    )

    problem = await response.json()
    assert response.status == 502, problem
    assert "TCP" in problem["detail"]
    assert time.monotonic() - started < 2.0


async def test_setconfig_never_goes_in_clear_sip(wired, sipp):
    gateway = await wired()
    phone = sipp("phone_large.xml", "t1")
    await register(
        gateway, "1001", phone.contact.split(";")[0], transport="tcp", user_agent=LAB_USER_AGENT
    )

    response = await gateway.post(
        SIP,
        json={"command_uri": "setConfig", "data": {"reg.1.auth.password": "secret"}},
        headers=AUTH,
    )

    problem = await response.json()
    assert response.status == 422, problem
    assert "clear SIP" in problem["detail"]
    phone.kill()
    assert not phone.log_file.exists() or _received_requests(phone.log_file) == []


async def test_over_20_kb_is_413_and_nothing_is_sent(wired, sipp):
    gateway = await wired()
    phone = sipp("phone_large.xml", "t1")
    await register(
        gateway, "1001", phone.contact.split(";")[0], transport="tcp", user_agent=LAB_USER_AGENT
    )

    response = await gateway.post(
        SIP,
        json={"command_uri": "setConfig", "data": _config_of(20 * 1024 + 200)},
        headers=AUTH,
    )

    assert response.status == 413, await response.text()
    phone.kill()
    assert not (phone.workdir / f"sipp-{phone.port}.log").exists() or not [
        line for line in phone.log_file.read_text().splitlines() if "NOTIFY sip:" in line
    ]


def _expected_response(auth: dict[str, str], algorithm: str) -> str:
    """RFC 7616 §3.4.1 written out again here, independently of sipbridge.sip.digest."""
    h = hashlib.sha256 if algorithm == "SHA-256" else hashlib.md5

    def hx(text: str) -> str:
        return h(text.encode()).hexdigest()

    ha1 = hx(f"1001:phone.example:{PASSWORD}")
    ha2 = hx(f"NOTIFY:{auth['uri']}")
    return hx(f"{ha1}:{auth['nonce']}:{auth['nc']}:{auth['cnonce']}:auth:{ha2}")


def _credentials_file(tmp_path):
    path = tmp_path / "phones.toml"
    path.write_text(f'[phones."1001"]\nsip_password = "{PASSWORD}"\n')
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("status", "challenge", "answer_header", "algorithm"),
    [
        ("401", "WWW-Authenticate", "Authorization", "MD5"),
        ("401", "WWW-Authenticate", "Authorization", "SHA-256"),
        ("407", "Proxy-Authenticate", "Proxy-Authorization", "MD5"),
    ],
)
@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_challenged_notify_is_retried_once_with_credentials(
    wired, sipp, tmp_path, status, challenge, answer_header, algorithm, transport
):
    gateway = await wired(phone_credentials_file=_credentials_file(tmp_path))
    reason = "Unauthorized" if status == "401" else "Proxy Authentication Required"
    # sipp takes no key for a status code: the scenario is written out with it filled in.
    scenario = tmp_path / "challenge.xml"
    scenario.write_text(
        (SCENARIOS / "phone_challenge.xml")
        .read_text()
        .replace("[status] [reason]", f"{status} {reason}")
    )
    phone = sipp(
        str(scenario),
        transport,
        calls=2,
        keys={"challenge": challenge, "algorithm": algorithm},
    )
    await register(
        gateway,
        "1001",
        phone.contact.split(";")[0],
        transport="tcp" if transport == "t1" else "udp",
    )

    response = await gateway.post(
        "/v1/phones/1001/commands",
        json={"command_uri": "holdCall", "data": {}},
        headers=AUTH,
    )

    assert response.status == 200, await response.text()
    assert phone.finish() == 0
    first, retry = phone.received
    assert first.headers.get(answer_header) is None
    other = "Authorization" if answer_header == "Proxy-Authorization" else "Proxy-Authorization"
    assert retry.headers.get(other) is None
    auth = digest.parse_authorization(retry.headers.get(answer_header) or "")
    assert auth["algorithm"] == algorithm and auth["username"] == "1001"
    assert auth["nonce"] == "n0nce-1" and auth["opaque"] == "op4que"
    assert auth["uri"] == retry.uri
    assert auth["response"] == _expected_response(auth, algorithm)
    assert first.body == retry.body


async def test_phone_that_challenges_twice_gets_two_notifies_and_the_caller_a_502(
    wired, sipp, tmp_path
):
    gateway = await wired(phone_credentials_file=_credentials_file(tmp_path))
    phone = sipp("phone_challenge_always.xml", "u1", calls=3)
    await register(gateway, "1001", phone.contact, transport="udp")

    response = await gateway.post(
        "/v1/phones/1001/commands",
        json={"command_uri": "holdCall", "data": {}},
        headers=AUTH,
    )

    problem = await response.json()
    assert response.status == 502, problem
    assert problem.get("sip_status") == 401
    phone.kill()
    phone.received = []
    from tests.helpers import _received_requests

    assert len(_received_requests(phone.log_file)) == 2


async def test_challenge_without_configured_credentials_is_a_502_after_one_notify(
    wired, sipp, tmp_path
):
    gateway = await wired()
    phone = sipp("phone_challenge_always.xml", "u1", calls=3)
    await register(gateway, "1001", phone.contact, transport="udp")

    response = await gateway.post(
        "/v1/phones/1001/commands",
        json={"command_uri": "holdCall", "data": {}},
        headers=AUTH,
    )

    assert response.status == 502
    phone.kill()
    from tests.helpers import _received_requests

    assert len(_received_requests(phone.log_file)) == 1
