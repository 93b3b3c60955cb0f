"""The commands a newcomer runs: `sipbridge demo` prints curl lines that work as printed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port

SIPBRIDGE = [sys.executable, "-m", "sipbridge"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPBRIDGE_")}
    env.update(
        {
            "SIPBRIDGE_HTTP_PORT": str(free_port()),
            "SIPBRIDGE_SIP_PORT": str(free_port()),
            "SIPBRIDGE_LISTEN_PORT": str(free_port()),
        }
    )
    env.update(extra)
    return env


@pytest.fixture
def demo(tmp_path):
    process = subprocess.Popen(
        [*SIPBRIDGE, "demo"],
        env=_env(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 30
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C" in line:
            break
    yield process, "".join(lines)
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


def _curl_lines(banner: str) -> list[str]:
    joined = banner.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip().startswith("curl ")]


def _run(line: str) -> Any:
    out = subprocess.run(
        ["bash", "-c", line], capture_output=True, text=True, timeout=15, check=True
    )
    return json.loads(out.stdout)


def test_demo_curl_lines_hold_and_resume_a_simulated_call(demo):
    process, banner = demo
    assert process.poll() is None, process.stderr.read() if process.stderr else ""
    curls = _curl_lines(banner)
    listing, hold, resume, dtmf, show = curls
    calls = _run(listing)["calls"]
    assert len(calls) == 2 and {c["state"] for c in calls} == {"connected"}
    call_id = re.search(r"/v1/calls/([^/\s]+)/hold", hold).group(1)  # type: ignore[union-attr]
    held = _run(hold)
    assert (held["call_id"], held["sip_status"]) == (call_id, 200)
    assert _run(show)["state"] == "held"
    assert _run(resume)["sip_status"] == 200
    assert _run(dtmf)["command_uri"] == "/api/v1/callctrl/sendDTMF"
    assert _run(show)["state"] == "connected"
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0


def test_serve_reports_bad_settings_without_a_traceback(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('phone_queue_limit = "lots"\n')
    result = subprocess.run(
        [*SIPBRIDGE, "serve", "--config", str(config)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "phone_queue_limit" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run(
        [*SIPBRIDGE, "serve", "--config", str(tmp_path / "missing.toml")],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0 and "not found" in result.stderr


def test_serve_reports_a_port_in_use_without_a_traceback(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*SIPBRIDGE, "serve"],
            env=_env(tmp_path, SIPBRIDGE_HTTP_PORT=str(port), SIPBRIDGE_DATA_DIR=str(tmp_path)),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode != 0
    assert f"127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


def _wait_healthy(port: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, "the service exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the service did not come up")


def test_serve_generates_a_key_once_and_keeps_it(tmp_path):
    env = _env(tmp_path, SIPBRIDGE_DATA_DIR=str(tmp_path / "data"))
    key_file = tmp_path / "data" / "api-key"
    keys = []
    for _ in range(2):
        process = subprocess.Popen([*SIPBRIDGE, "serve"], env=env, stderr=subprocess.DEVNULL)
        try:
            _wait_healthy(env["SIPBRIDGE_HTTP_PORT"], process)
            keys.append(key_file.read_text().strip())
            assert oct(key_file.stat().st_mode & 0o777) == "0o600"
            request = urllib.request.Request(
                f"http://127.0.0.1:{env['SIPBRIDGE_HTTP_PORT']}/v1/phones",
                headers={"Authorization": f"Bearer {keys[-1]}"},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                assert json.load(response) == {"phones": []}
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
    assert keys[0] == keys[1] and len(keys[0]) >= 24


def test_serve_refuses_an_api_key_file_others_can_read(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    key_file = data / "api-key"
    key_file.write_text("a-key-of-ours-123\n")
    key_file.chmod(0o644)
    result = subprocess.run(
        [*SIPBRIDGE, "serve"],
        env=_env(tmp_path, SIPBRIDGE_DATA_DIR=str(data)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert f"chmod 600 {key_file}" in result.stderr and "Traceback" not in result.stderr
