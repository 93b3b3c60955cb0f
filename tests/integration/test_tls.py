"""TLS end to end: `sipbridge serve` (the real pjsua2 UA, listener and HTTPS) against TLS peers.

Debian's sipp is built without OpenSSL ("To use a TLS transport you must compile SIPp with
OpenSSL"), so the phone here is a small asyncio TLS server that frames and parses what it gets
with sipbridge's own stream parser and answers 200. The gateway runs as a process of its own:
pjsua2 allows one Endpoint per process, and the session's UA (conftest.py) has no TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from sipbridge.sip.message import (
    SipRequest,
    SipResponse,
    StreamParser,
    build_response,
    serialize,
)
from tests.certs import Authority, Issued, make_authority
from tests.dns_server import start_dns
from tests.helpers import LAB_USER_AGENT, free_port, lab_profiles

pytestmark = pytest.mark.integration

SIPBRIDGE = [sys.executable, "-m", "sipbridge"]
KEY = "tls-integration-key-1"
AUTH = {"Authorization": f"Bearer {KEY}"}
DEADLINE = 3.0


@dataclass(frozen=True)
class Pki:
    ca: Authority
    sipbridge: Issued
    phone: Issued
    wrong_name: Issued  # signed by the CA, but for another address
    stranger: Issued  # for the right address, signed by a CA nobody trusts
    named: Issued  # for the host name phone.test only (no address in it)
    other_named: Issued  # for other.test only


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = make_authority(directory)
    other = make_authority(directory, "stranger-ca")
    return Pki(
        ca=ca,
        sipbridge=ca.issue("sipbridge"),
        phone=ca.issue("phone"),
        wrong_name=ca.issue("wrong-name", hosts=("10.9.9.9",)),
        stranger=other.issue("stranger"),
        named=ca.issue("named", hosts=("phone.test",)),
        other_named=ca.issue("other-named", hosts=("other.test",)),
    )


class TlsPhone:
    """A phone that speaks SIP over TLS only and answers every request 200."""

    def __init__(self, cert: Issued) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert.cert_file, cert.key_file)
        self.server_names: list[str | None] = []  # the SNI of each handshake
        self._context.sni_callback = lambda _, name, __: self.server_names.append(name)
        self.received: list[SipRequest] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def __aenter__(self) -> TlsPhone:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", 0, ssl=self._context, ssl_handshake_timeout=5
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for task, writer in list(self._connections.items()):
            if not writer.is_closing():
                writer.transport.abort()  # no close_notify dance with a peer that may be gone
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        await asyncio.sleep(0)  # let the aborted transports finish closing

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        parser = StreamParser(max_buffer=65_536)
        try:
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                while chunk := await reader.read(65_536):
                    parser.feed(chunk)
                    while (message := parser.next_message()) is not None:
                        assert isinstance(message, SipRequest)
                        self.received.append(message)
                        response = build_response(message, 200, "OK", to_tag="tlsphone")
                        writer.write(serialize(response))
                    await writer.drain()
        finally:
            del self._connections[task]
            writer.close()


@dataclass
class Gateway:
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    base: str
    client_tls: ssl.SSLContext | bool

    @property
    def listen_tls_port(self) -> int:
        return int(self.env["SIPBRIDGE_LISTEN_TLS_PORT"])

    def session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            self.base, headers=AUTH, connector=aiohttp.TCPConnector(ssl=self.client_tls)
        )


def trusting(ca: Authority) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.cert_file))
    return context


def _env(tmp_path: Path, pki: Pki, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPBRIDGE_")}
    env.update(
        {
            "SIPBRIDGE_API_KEYS": KEY,
            "SIPBRIDGE_DATA_DIR": str(tmp_path / f"data-{uuid.uuid4().hex[:8]}"),
            "SIPBRIDGE_HTTP_PORT": str(free_port()),
            "SIPBRIDGE_SIP_PORT": str(free_port()),
            "SIPBRIDGE_SIP_TLS_PORT": str(free_port()),
            "SIPBRIDGE_LISTEN_PORT": str(free_port()),
            "SIPBRIDGE_LISTEN_TLS_PORT": str(free_port()),
            "SIPBRIDGE_TLS_CERT_FILE": str(pki.sipbridge.cert_file),
            "SIPBRIDGE_TLS_KEY_FILE": str(pki.sipbridge.key_file),
            "SIPBRIDGE_TLS_CA_FILE": str(pki.ca.cert_file),
            "SIPBRIDGE_SUBSCRIBE_DIALOGS": "none",
            "SIPBRIDGE_COMMAND_DEADLINE": str(DEADLINE),
            "SIPBRIDGE_SIP_TRANSACTION_TIMEOUT": "2",
        }
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def serving(env: dict[str, str], client_tls: ssl.SSLContext | bool) -> Iterator[Gateway]:
    scheme = "https" if env.get("SIPBRIDGE_HTTP_TLS") == "true" else "http"
    base = f"{scheme}://127.0.0.1:{env['SIPBRIDGE_HTTP_PORT']}"
    process = subprocess.Popen([*SIPBRIDGE, "serve"], env=env, stderr=subprocess.PIPE)
    try:
        _wait_healthy(base, process, client_tls)
        yield Gateway(process=process, env=env, base=base, client_tls=client_tls)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()


def _wait_healthy(base: str, process: subprocess.Popen[bytes], tls: ssl.SSLContext | bool) -> None:
    context = tls if isinstance(tls, ssl.SSLContext) else None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            assert process.stderr is not None
            raise AssertionError(f"the service exited: {process.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/v1/health", timeout=1, context=context) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the service did not come up")


@pytest.fixture(scope="module")
def gateway(pki, tmp_path_factory) -> Iterator[Gateway]:
    """Verification on (the default), the test CA as trust store, HTTPS on the front API."""
    directory = tmp_path_factory.mktemp("gw")
    env = _env(
        directory,
        pki,
        SIPBRIDGE_HTTP_TLS="true",
        SIPBRIDGE_SIP_PROFILES_DIR=str(lab_profiles(directory / "profiles")),
    )
    with serving(env, trusting(pki.ca)) as gateway:
        yield gateway


async def hold_on(gateway: Gateway, contact: str, phone: str = "1001") -> aiohttp.ClientResponse:
    async with gateway.session() as http:
        response = await http.put(f"/v1/phones/{phone}", json={"contact": contact})
        assert response.status == 200, await response.text()
        call_id = f"{uuid.uuid4().hex}@127.0.0.1"
        response = await http.put(f"/v1/calls/{call_id}", json={"phone": phone})
        assert response.status == 200, await response.text()
        response = await http.post(f"/v1/calls/{call_id}/hold")
        await response.read()
        return response


@pytest.mark.parametrize(
    "contact", ["sips:1001@127.0.0.1:{port}", "sip:1001@127.0.0.1:{port};transport=tls"]
)
async def test_a_command_reaches_a_tls_phone_and_returns_its_200(gateway, pki, contact):
    async with TlsPhone(pki.phone) as phone:
        response = await hold_on(gateway, contact.format(port=phone.port))
        assert response.status == 200, await response.text()
        result = await response.json()
        assert (result["sip_status"], result["transport"]) == (200, "sip")
        [notify] = phone.received
        assert notify.method == "NOTIFY" and notify.headers.get("Event") == "ACTION-URI"
        assert (notify.headers.get("Via") or "").startswith("SIP/2.0/TLS ")
        assert b"holdCall" in notify.body
        # Reports (Edge E's INFO) come back over TLS too: to the listener's TLS port.
        reports = f"sipbridge@127.0.0.1:{gateway.listen_tls_port}"
        expected = (
            f"<sips:{reports}>" if contact.startswith("sips:") else f"<sip:{reports};transport=tls>"
        )
        assert notify.headers.get("Contact") == expected


def _config_of(size: int) -> dict[str, str]:
    """setConfig data whose NOTIFY body is about `size` bytes (values of at most 2,048)."""
    values, total, index = {}, 40, 0
    while total < size:
        name = f"feature.x{index:02d}.value"
        values[name] = "v" * max(1, min(2000, size - total) - len(name) - 6)
        total += len(name) + len(values[name]) + 6
        index += 1
    return values


@pytest.mark.parametrize("size", [1024, 5 * 1024, 19 * 1024])
async def test_setconfig_up_to_20_kb_reaches_a_tls_phone_whole(gateway, pki, size):
    # setConfig may carry passwords: over SIP only over TLS (manual 002's 20 KB holds there),
    # from sipbridge's own stack past pjsua's 4,000-byte buffer.
    data = _config_of(size)
    async with TlsPhone(pki.phone) as phone, gateway.session() as http:
        response = await http.put(
            "/v1/phones/1001",
            json={"contact": f"sips:1001@127.0.0.1:{phone.port}", "user_agent": LAB_USER_AGENT},
        )
        assert response.status == 200, await response.text()
        response = await http.post(
            "/v1/phones/1001/commands?transport=sip",
            json={"command_uri": "setConfig", "data": data},
        )
        assert response.status == 200, await response.text()
        assert (await response.json())["sip_status"] == 200
        [notify] = phone.received
        assert (notify.headers.get("Via") or "").startswith("SIP/2.0/TLS ")
        assert json.loads(notify.body)["data"] == data
        assert len(notify.body) >= size * 0.95


@pytest.mark.parametrize("cert", ["stranger", "wrong_name"])
async def test_an_unverifiable_phone_fails_at_once_with_a_clear_502(gateway, pki, cert):
    async with TlsPhone(getattr(pki, cert)) as phone:
        started = time.monotonic()
        response = await hold_on(gateway, f"sips:1001@127.0.0.1:{phone.port}")
        elapsed = time.monotonic() - started
        assert response.status == 502, await response.text()
        problem = await response.json()
        assert problem["type"].endswith("phone-unreachable")
        assert "TLS verification of the phone failed" in problem["detail"]
        assert phone.received == []  # nothing was sent to a peer that failed the check
        assert elapsed < DEADLINE


async def test_a_peer_that_never_finishes_the_handshake_does_not_hang(gateway):
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # reads nothing, answers nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.monotonic()
        response = await hold_on(gateway, f"sips:1001@127.0.0.1:{port}")
        elapsed = time.monotonic() - started
        assert response.status in (502, 504), await response.text()
        assert elapsed < DEADLINE + 1
        assert accepted  # the connection was made: the handshake is what never ended
    finally:
        for writer in accepted:
            writer.close()
            await writer.wait_closed()
        server.close()
        await server.wait_closed()


async def test_with_verification_off_an_untrusted_phone_is_reached(pki, tmp_path):
    env = _env(tmp_path, pki, SIPBRIDGE_TLS_VERIFY_PHONES="false")
    with serving(env, False) as gateway:
        async with TlsPhone(pki.stranger) as phone:
            response = await hold_on(gateway, f"sips:1001@127.0.0.1:{phone.port}")
            assert response.status == 200, await response.text()
            assert [r.method for r in phone.received] == ["NOTIFY"]


async def test_register_over_tls_is_answered_tracked_as_tls_and_commands_follow(gateway, pki):
    async with TlsPhone(pki.phone) as phone:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", gateway.listen_tls_port, ssl=trusting(pki.ca)
        )
        local_port = writer.get_extra_info("sockname")[1]
        register = (
            f"REGISTER sip:127.0.0.1:{gateway.listen_tls_port};transport=tls SIP/2.0\r\n"
            f"Via: SIP/2.0/TLS 127.0.0.1:{local_port};branch=z9hG4bK-tls-{uuid.uuid4().hex}\r\n"
            "From: <sip:2002@127.0.0.1>;tag=reg1\r\n"
            "To: <sip:2002@127.0.0.1>\r\n"
            f"Call-ID: reg-{uuid.uuid4().hex}@127.0.0.1\r\n"
            "CSeq: 1 REGISTER\r\n"
            f"Contact: <sip:2002@127.0.0.1:{phone.port}>\r\n"
            "Expires: 300\r\n"
            "Max-Forwards: 70\r\n"
            "User-Agent: PolyEdge-E450-UA/8.3.0.0123\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        writer.write(register.encode())
        parser = StreamParser(max_buffer=65_536)
        answer = None
        async with asyncio.timeout(5):
            while answer is None:
                parser.feed(await reader.read(65_536))
                answer = parser.next_message()
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
        assert isinstance(answer, SipResponse) and answer.status == 200, answer
        async with gateway.session() as http:
            record = await (await http.get("/v1/phones/2002")).json()
            assert (record["transport"], record["learned_from"]) == ("tls", "register")
            await http.put("/v1/calls/over-tls@h", json={"phone": "2002"})
            response = await http.post("/v1/calls/over-tls@h/hold")
            assert response.status == 200, await response.text()
        # A new TLS connection to the Contact (no reuse of the REGISTER's, RFC 5626 is not done)
        assert [r.method for r in phone.received] == ["NOTIFY"]
        assert (phone.received[0].headers.get("Via") or "").startswith("SIP/2.0/TLS ")


async def test_the_front_api_is_https_only_from_tls_1_2(gateway, pki):
    port = gateway.env["SIPBRIDGE_HTTP_PORT"]
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"https://127.0.0.1:{port}/v1/health", ssl=trusting(pki.ca)
        ) as response:
            assert response.status == 200
        with pytest.raises(aiohttp.ClientError):
            async with http.get(f"http://127.0.0.1:{port}/v1/health") as response:
                await response.read()
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            async with http.get(f"https://127.0.0.1:{port}/v1/health") as response:
                await response.read()  # the system store does not know the test CA

    def tls_client(version: ssl.TLSVersion) -> ssl.SSLContext:
        context = trusting(pki.ca)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = context.maximum_version = version
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
        return context

    _, writer = await asyncio.open_connection(
        "127.0.0.1", int(port), ssl=tls_client(ssl.TLSVersion.TLSv1_2)
    )
    assert writer.get_extra_info("ssl_object").version() == "TLSv1.2"
    writer.close()
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await writer.wait_closed()
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await asyncio.open_connection(
            "127.0.0.1", int(port), ssl=tls_client(ssl.TLSVersion.TLSv1_1)
        )


@pytest.mark.parametrize("fault", ["world-readable key", "key of another certificate"])
def test_serve_refuses_bad_tls_files_with_a_sentence(pki, tmp_path, fault):
    key = pki.sipbridge.key_file
    if fault == "world-readable key":
        key = tmp_path / "open.key"
        key.write_bytes(pki.sipbridge.key_file.read_bytes())
        key.chmod(0o644)
        expected = "chmod 600"
    else:
        key = pki.phone.key_file
        expected = "does not match"
    env = _env(tmp_path, pki, SIPBRIDGE_TLS_KEY_FILE=str(key), SIPBRIDGE_HTTP_TLS="true")
    result = subprocess.run(
        [*SIPBRIDGE, "serve"], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]


PHONE_NAME = "phone.test"


@pytest.fixture
async def phone_dns():
    """A DNS server of the test's own on loopback: phone.test is 127.0.0.1 (tests add more)."""
    dns = await start_dns({(PHONE_NAME, "A"): (60, ["127.0.0.1"])})
    yield dns
    dns.close()


@pytest.fixture
def named_gateway(pki, tmp_path, phone_dns):
    """A gateway asking `phone_dns`: a TLS phone reached by name, whose certificate must name
    phone.test."""
    env = _env(tmp_path, pki, SIPBRIDGE_DNS_NAMESERVERS=phone_dns.address)
    with serving(env, False) as gateway:
        yield gateway


@pytest.mark.parametrize(
    "contact", ["sips:1001@phone.test:{port}", "sip:1001@phone.test:{port};transport=tls"]
)
async def test_a_tls_phone_reached_by_name_is_checked_against_the_name(
    named_gateway, pki, contact
):
    """RFC 5922 §7: the certificate must name the URI's host, phone.test, which sipbridge
    resolved itself; pjsip, handed the address, checked 127.0.0.1 and refused this phone."""
    async with TlsPhone(pki.named) as phone:
        response = await hold_on(named_gateway, contact.format(port=phone.port))
        assert response.status == 200, await response.text()
        [notify] = phone.received
        assert notify.method == "NOTIFY" and b"holdCall" in notify.body
        assert (notify.headers.get("Via") or "").startswith("SIP/2.0/TLS ")
        assert notify.uri.startswith(("sips:1001@127.0.0.1:", "sip:1001@127.0.0.1:"))
        assert phone.server_names == [PHONE_NAME]  # SNI: the name, not the address


@pytest.mark.parametrize("cert", ["other_named", "phone"])
async def test_a_tls_phone_by_name_whose_certificate_names_another_host_gets_nothing(
    named_gateway, pki, cert
):
    """`phone` is for 127.0.0.1 (the address phone.test resolves to): pjsip, which checked the
    address, accepted it; a certificate for the address is not one for the name."""
    async with TlsPhone(getattr(pki, cert)) as phone:
        started = time.monotonic()
        response = await hold_on(named_gateway, f"sips:1001@phone.test:{phone.port}")
        elapsed = time.monotonic() - started
        assert response.status == 502, await response.text()
        problem = await response.json()
        assert problem["type"].endswith("phone-unreachable")
        assert "TLS verification of the phone failed" in problem["detail"]
        assert "does not name phone.test" in problem["detail"]
        assert phone.received == []  # nothing was sent, in clear or otherwise
        assert elapsed < DEADLINE


async def test_a_tls_phone_by_name_behind_an_untrusted_ca_gets_nothing(named_gateway, pki):
    stranger = make_authority(pki.ca.directory, "stranger-named-ca")
    async with TlsPhone(stranger.issue("stranger-named", hosts=(PHONE_NAME,))) as phone:
        response = await hold_on(named_gateway, f"sips:1001@phone.test:{phone.port}")
        assert response.status == 502, await response.text()
        problem = await response.json()
        assert "TLS verification of the phone failed" in problem["detail"]
        assert phone.received == []


async def test_a_tls_srv_target_that_refuses_is_followed_and_the_uri_name_checked(
    named_gateway, phone_dns, pki
):
    """RFC 3263 §4.3 over TLS: the first SRV target refuses, the second is the phone. Its
    certificate names phone.test, the URI's host, not the SRV target's name (RFC 5922 §4.1)."""
    closed = free_port()
    async with TlsPhone(pki.named) as phone:
        phone_dns.records[("_sips._tcp.phone.test", "SRV")] = (
            60,
            [f"10 0 {closed} a.phone.test.", f"20 0 {phone.port} b.phone.test."],
        )
        phone_dns.records[("a.phone.test", "A")] = (60, ["127.0.0.1"])
        phone_dns.records[("b.phone.test", "A")] = (60, ["127.0.0.1"])
        response = await hold_on(named_gateway, "sips:1001@phone.test")
        assert response.status == 200, await response.text()
        assert [r.method for r in phone.received] == ["NOTIFY"]
        assert phone.server_names == [PHONE_NAME]
