"""`sipbridge users` and `sipbridge keys` beside a running `sipbridge serve`: what the CLI writes
the service honours, passwords never show, a new key is the last line, users survive a
restart (and kill -9)."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port

pytestmark = pytest.mark.integration

SIPBRIDGE = [sys.executable, "-m", "sipbridge"]
PASSWORD = "cli-admin-password-7"


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPBRIDGE_")}
    env.update(
        {
            "SIPBRIDGE_DATA_DIR": str(data_dir),
            "SIPBRIDGE_HTTP_PORT": str(free_port(socket.SOCK_STREAM)),  # a TCP port
            "SIPBRIDGE_SIP_PORT": str(free_port()),
            "SIPBRIDGE_LISTEN_PORT": str(free_port()),
            "SIPBRIDGE_SUBSCRIBE_DIALOGS": "none",
        }
    )
    return env


def cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SIPBRIDGE, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


def get(env: dict[str, str], path: str, header: str) -> tuple[int, object]:
    url = f"http://127.0.0.1:{env['SIPBRIDGE_HTTP_PORT']}{path}"
    request = urllib.request.Request(url, headers={"Authorization": header})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def service(tmp_path) -> Iterator[tuple[dict[str, str], list[subprocess.Popen[bytes]]]]:
    env = _env(tmp_path / "data")
    started: list[subprocess.Popen[bytes]] = []
    yield env, started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()


def start(env: dict[str, str], started: list[subprocess.Popen[bytes]]) -> None:
    process = subprocess.Popen(
        [*SIPBRIDGE, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    started.append(process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            assert process.stderr is not None
            raise AssertionError(process.stderr.read().decode()[-2000:])
        try:
            status, _ = get(env, "/v1/health", "")
            if status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the service did not come up")


def test_users_and_keys_from_the_cli_reach_the_service_and_survive_kill_9(service):
    env, started = service
    start(env, started)
    status, body = get(env, "/api/v1/status", basic("admin", PASSWORD))
    assert status == 503 and "sipbridge users add" in body["detail"]  # type: ignore[index]

    added = cli(
        env, "users", "add", "admin", "--level", "security-administrator", "--password-stdin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert PASSWORD not in added.stdout + added.stderr
    assert get(env, "/api/v1/status", basic("admin", PASSWORD))[0] == 200

    made = cli(env, "keys", "add", "dashboard", "--level", "monitor")
    assert made.returncode == 0, made.stderr
    key = made.stdout.splitlines()[-1]
    assert len(key) >= 43 and " " not in key
    listed = cli(env, "keys", "list")
    assert "dashboard\tmonitor" in listed.stdout and key not in listed.stdout
    time.sleep(2.2)  # identity.KEY_CACHE_SECONDS
    assert get(env, "/v1/phones", f"Bearer {key}")[0] == 200

    # kill -9, start again: the user and the key are still there.
    started[-1].send_signal(signal.SIGKILL)
    started[-1].wait(timeout=10)
    start(env, started)
    assert get(env, "/api/v1/status", basic("admin", PASSWORD))[0] == 200
    assert get(env, "/v1/phones", f"Bearer {key}")[0] == 200

    users = cli(env, "users", "list")
    assert users.stdout.startswith("admin\tsecurity-administrator\t")
    assert PASSWORD not in users.stdout and "$argon2" not in users.stdout


def test_cli_refusals_are_one_line_each(tmp_path):
    env = _env(tmp_path / "data")
    short = cli(env, "users", "add", "bob", "--level", "monitor", "--password-stdin", stdin="x\n")
    assert short.returncode != 0 and "at least 12" in short.stderr
    assert "Traceback" not in short.stderr
    bad_level = cli(env, "users", "add", "bob", "--level", "root", "--password-stdin", stdin="")
    assert bad_level.returncode != 0 and "monitor" in bad_level.stderr
    no_tty = cli(env, "users", "add", "bob", "--level", "monitor")
    assert no_tty.returncode != 0 and "--password-stdin" in no_tty.stderr
    missing = cli(env, "users", "remove", "nobody")
    assert missing.returncode != 0 and "no user 'nobody'" in missing.stderr
    bad_name = cli(env, "keys", "add", "two words", "--level", "monitor")
    assert bad_name.returncode != 0 and "not a valid name" in bad_name.stderr
