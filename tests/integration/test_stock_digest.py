"""sipbridge's phone HTTP client against a web server we did not write: Debian's lighttpd with
mod_auth (Basic, Digest MD5, Digest SHA-256) and mod_openssl, started here on 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from sipbridge.commands.outcome import accept_http_answer
from sipbridge.errors import PhoneAuthFailed, PhoneUnreachable
from sipbridge.phone.http import HttpExchange, PhoneEndpoint, PhoneHttpClient, tls_context
from sipbridge.phone.profiles import AuthMethod
from tests.helpers import free_port

PASSWORD = "S3cret-Admin-1"
DEVICE_INFO = '{"Status":"2000","data":{"ModelNumber":"VVX 450","FirmwareRelease":"6.4.3"}}'


@dataclass
class Lighttpd:
    port: int
    process: subprocess.Popen[bytes]
    cert: Path | None

    def url(self) -> str:
        return f"{'https' if self.cert else 'http'}://127.0.0.1:{self.port}"


def _start(workdir: Path, auth: str, *, tls: bool = False) -> Lighttpd:
    binary = shutil.which("lighttpd") or "/usr/sbin/lighttpd"
    assert Path(binary).exists(), "lighttpd is not installed (scripts/dev test installs it)"
    root = workdir / "docroot"
    (root / "api/v2/mgmt/device").mkdir(parents=True, exist_ok=True)
    (root / "api/v2/mgmt/device/info").write_text(DEVICE_INFO)
    (workdir / "users").write_text(f"Polycom:{PASSWORD}\n")
    method, _, algorithm = auth.partition(":")
    require = f'"method" => "{method}", "realm" => "PolycomSPIP", "require" => "valid-user"'
    if algorithm:
        require += f', "algorithm" => "{algorithm}"'
    port = free_port()
    cert = None
    modules = '"mod_auth", "mod_authn_file"'
    tls_lines = ""
    if tls:
        cert = workdir / "phone.pem"
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                "-keyout", str(cert), "-out", str(cert),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        modules += ', "mod_openssl"'
        tls_lines = f'ssl.engine = "enable"\nssl.pemfile = "{cert}"\n'
    config = workdir / "lighttpd.conf"
    config.write_text(
        f"""server.document-root = "{root}"
server.bind = "127.0.0.1"
server.port = {port}
server.modules = ({modules})
server.errorlog = "{workdir / "error.log"}"
mimetype.assign = ("" => "application/json")
auth.backend = "plain"
auth.backend.plain.userfile = "{workdir / "users"}"
auth.require = ("/api/" => ({require}))
{tls_lines}"""
    )
    process = subprocess.Popen([binary, "-D", "-f", str(config)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"lighttpd exited: {error}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return Lighttpd(port=port, process=process, cert=cert)
        time.sleep(0.02)
    process.kill()
    raise RuntimeError("lighttpd did not start listening")


@pytest.fixture
def lighttpd(tmp_path) -> Iterator[object]:
    started: list[Lighttpd] = []

    def start(auth: str, *, tls: bool = False) -> Lighttpd:
        server = _start(tmp_path / f"lt{len(started)}", auth, tls=tls)
        started.append(server)
        return server

    yield start
    for server in started:
        server.process.terminate()
        server.process.wait(timeout=10)
        if server.process.stderr is not None:
            server.process.stderr.close()


def exchange(server: Lighttpd, auth: AuthMethod, password: str = PASSWORD) -> HttpExchange:
    endpoint = PhoneEndpoint(
        phone_id="1001",
        base_url=server.url(),
        user="Polycom",
        password=SecretStr(password),
        auth=auth,
    )
    return HttpExchange(
        url=server.url() + "/api/v2/mgmt/device/info", method="GET", endpoint=endpoint
    )


@pytest.mark.parametrize(
    ("server_auth", "client_auth"),
    [
        ("basic", "basic"),
        ("digest:MD5", "digest"),
        ("digest:SHA-256", "digest"),  # lighttpd then refuses anything but SHA-256
        ("digest:SHA-256|MD5", "digest"),  # both offered: aiohttp answers the first (SHA-256)
    ],
)
async def test_lighttpd_accepts_our_basic_and_digest(lighttpd, server_auth, client_auth):
    server = lighttpd(server_auth)
    client = PhoneHttpClient(timeout=5)
    await client.start()
    try:
        for _ in range(3):  # the nonce count advances; lighttpd checks each request
            answer = await client.send(exchange(server, client_auth))
            outcome = accept_http_answer(answer)
            assert outcome.data == {"ModelNumber": "VVX 450", "FirmwareRelease": "6.4.3"}
        with pytest.raises(PhoneAuthFailed):
            accept_http_answer(await client.send(exchange(server, client_auth, "wrong")))
    finally:
        await client.close()


async def test_tls_verification_is_on_by_default_and_can_trust_a_phone_ca(tmp_path, lighttpd):
    server = lighttpd("digest:SHA-256", tls=True)
    strict = PhoneHttpClient(timeout=5, tls=tls_context(verify=True, ca_file=None))
    trusting = PhoneHttpClient(timeout=5, tls=tls_context(verify=True, ca_file=server.cert))
    relaxed = PhoneHttpClient(timeout=5, tls=tls_context(verify=False, ca_file=None))
    for client in (strict, trusting, relaxed):
        await client.start()
    try:
        with pytest.raises(PhoneUnreachable, match="certificate"):
            await strict.send(exchange(server, "digest"))
        for client in (trusting, relaxed):
            outcome = accept_http_answer(await client.send(exchange(server, "digest")))
            assert outcome.data["ModelNumber"] == "VVX 450"
    finally:
        for client in (strict, trusting, relaxed):
            await client.close()
