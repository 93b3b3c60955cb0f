"""Helpers shared by the integration tests: free ports, sipp as a phone, its message log."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sipbridge.sip.message import SipRequest, parse_message

SCENARIOS = Path(__file__).parent / "sip"


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


_SEPARATOR = re.compile(r"^-{20,}.*$", re.MULTILINE)


@dataclass
class SippPhone:
    """sipp playing a phone (UAS) on 127.0.0.1:port; `finish()` returns what it received."""

    scenario: str
    port: int
    workdir: Path
    transport: str = "u1"
    calls: int = 1
    keys: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    received: list[SipRequest] = field(default_factory=list)

    @property
    def contact(self) -> str:
        suffix = ";transport=tcp" if self.transport.startswith("t") else ""
        return f"sip:1001@127.0.0.1:{self.port}{suffix}"

    @property
    def log_file(self) -> Path:
        return self.workdir / f"sipp-{self.port}.log"

    def start(self) -> SippPhone:
        sipp = shutil.which("sipp")
        assert sipp, "sipp is not installed (Debian package sip-tester); run scripts/dev test"
        self.process = subprocess.Popen(
            [
                sipp,
                "-sf",
                str(SCENARIOS / self.scenario),
                "-i",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-t",
                self.transport,
                "-m",
                str(self.calls),
                "-timeout",
                "20",
                "-nostdin",
                "-trace_msg",
                "-message_file",
                str(self.log_file),
                "-trace_err",
                "-error_file",
                str(self.workdir / f"sipp-{self.port}.err"),
                *_key_args(self.keys),
            ],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _wait_for_port(self.port, self.transport, self.process)
        return self

    def finish(self, timeout: float = 10) -> int:
        assert self.process is not None
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            code = -1
        self._close()
        self.received = _received_requests(self.log_file)
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close()

    def _close(self) -> None:
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()


def _wait_for_port(port: int, transport: str, process: subprocess.Popen[bytes]) -> None:
    kind = socket.SOCK_STREAM if transport.startswith("t") else socket.SOCK_DGRAM
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"sipp exited early ({process.returncode}): {err}")
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return  # sipp holds the port
        time.sleep(0.02)
    raise RuntimeError(f"sipp did not bind port {port}")


def _received_requests(log_file: Path) -> list[SipRequest]:
    """The requests sipp logged as received, parsed by sipbridge's parser."""
    if not log_file.exists():
        return []
    requests = []
    for chunk in _SEPARATOR.split(log_file.read_text()):
        head, _, message = chunk.strip("\n").partition("\n")
        if "message received" not in head:
            continue
        text = message.lstrip("\n").replace("\r\n", "\n").replace("\n", "\r\n")
        head, _, body = text.partition("\r\n\r\n")
        # The log loses trailing line ends (of the blank line, or of the body): restore them.
        length = re.search(r"^(?:Content-Length|l)\s*:\s*(\d+)", head, re.I | re.M)
        wanted = int(length.group(1)) if length else len(body.encode())
        raw_body = body.encode()
        raw_body += b"\r\n" * ((wanted - len(raw_body) + 1) // 2) if len(raw_body) < wanted else b""
        parsed = parse_message(head.encode() + b"\r\n\r\n" + raw_body[:wanted])
        if isinstance(parsed, SipRequest):
            requests.append(parsed)
    return requests


@dataclass(frozen=True)
class LoggedMessage:
    """One message in sipp's -trace_msg log, in the order sipp handled them."""

    direction: str  # "received" or "sent"
    start_line: str
    call_id: str
    text: str


def wire_log(log_file: Path) -> list[LoggedMessage]:
    """Every message sipp received and sent, in its own order (it is single-threaded)."""
    messages = []
    for chunk in _SEPARATOR.split(log_file.read_text() if log_file.exists() else ""):
        head, _, message = chunk.strip("\n").partition("\n")
        direction = next((d for d in ("received", "sent") if f"message {d}" in head), None)
        if direction is None:
            continue
        text = message.lstrip("\n")
        call_id = re.search(r"^(?:Call-ID|i)\s*:\s*(\S+)", text, re.I | re.M)
        messages.append(
            LoggedMessage(
                direction=direction,
                start_line=text.split("\n", 1)[0].strip(),
                call_id=call_id.group(1) if call_id else "",
                text=text,
            )
        )
    return messages


def _key_args(keys: dict[str, str]) -> list[str]:
    return [arg for name, value in keys.items() for arg in ("-key", name, value)]


def run_sipp_uac(
    scenario: str,
    target: str,
    workdir: Path,
    *,
    service: str = "1001",
    keys: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
    timeout: float = 20,
) -> subprocess.CompletedProcess[str]:
    """Run sipp as a client (one call) against 127.0.0.1:port and wait for it to finish."""
    sipp = shutil.which("sipp")
    assert sipp, "sipp is not installed (Debian package sip-tester); run scripts/dev test"
    port = free_port()
    return subprocess.run(
        [
            sipp,
            target,
            "-sf",
            str(SCENARIOS / scenario),
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "-s",
            service,
            "-m",
            "1",
            "-timeout",
            str(int(timeout)),
            "-nostdin",
            "-trace_err",
            "-error_file",
            str(workdir / f"sipp-uac-{port}.err"),
            *_key_args(keys or {}),
            *extra,
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout + 10,
    )


DEPLOY = Path(__file__).parents[1] / "deploy"


@dataclass
class Kamailio:
    """Debian's kamailio with deploy/kamailio/kamailio.cfg on 127.0.0.1:port, replicating
    REGISTERs to `listener` (a SIP URI)."""

    port: int
    listener: str
    workdir: Path
    config: str = "kamailio.cfg"
    http_port: int | None = None  # for the JSON-RPC config: xhttp on this TCP port
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Kamailio:
        binary = shutil.which("kamailio") or "/usr/sbin/kamailio"
        assert Path(binary).exists(), "kamailio is not installed; run scripts/dev test"
        log = (self.workdir / f"kamailio-{self.port}.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                "-f",
                str(DEPLOY / "kamailio" / self.config),
                "-DD",
                "-E",
                "-l",
                f"udp:127.0.0.1:{self.port}",
                "-l",
                f"tcp:127.0.0.1:{self.port}",
                *(["-l", f"tcp:127.0.0.1:{self.http_port}"] if self.http_port else []),
                "-A",
                f'SIPBRIDGE_LISTENER="{self.listener}"',
                "-P",
                str(self.workdir / f"kamailio-{self.port}.pid"),
                "-Y",
                str(self.workdir),
                "-w",
                str(self.workdir),
                "-m",
                "64",
                "-M",
                "8",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        _wait_for_port(self.port, "u1", self.process)
        if self.http_port:
            _wait_for_port(self.http_port, "t1", self.process)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return (self.workdir / f"kamailio-{self.port}.log").read_text(errors="replace")


async def wait_for(probe: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await probe()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


def command_path(
    store: Any,
    sender: Any,
    *,
    http: Any = None,
    planner: Any = None,
    queue_limit: int = 4,
    deadline: float = 2.0,
    shared_locks: Any = None,
) -> Any:
    """A `CallControl` as the app builds it, on the given store and SIP sender (unit tests)."""
    from sipbridge.commands import CallControl, Journal, Lanes, Planner
    from sipbridge.tracker.group_commit import GroupCommit

    return CallControl(
        store,
        planner=planner or Planner(reports_contact=sender.local_contact),
        lanes=Lanes(queue_limit=queue_limit, deadline=deadline, shared_locks=shared_locks),
        journal=Journal(GroupCommit(store)),
        sip=sender,
        http=http,
    )


LAB_USER_AGENT = "LabPhone/9.5.0"


def lab_profiles(directory: Path) -> Path:
    """The shipped profiles plus `lab`: a family whose firmware takes management commands in a
    NOTIFY (`management_over_sip_since`), which no shipped profile claims (manual 002 shows
    call control only). Tests that need a large body over SIP use it."""
    shipped = Path(__file__).parent.parent / "sip_profiles"
    directory.mkdir(parents=True, exist_ok=True)
    for profile in shipped.glob("*.toml"):
        (directory / profile.name).write_text(profile.read_text())
    (directory / "lab.toml").write_text(
        'title = "Lab phone, management over SIP (tests only)"\n'
        'family = "LAB"\n'
        'firmware_line = "pvos"\n'
        "user_agent = ['LabPhone/(?P<version>[0-9.]+)']\n"
        'version_floor = "9.0.0"\n'
        'rest_over_sip_since = "8.0.0"\n'
        'call_id_ref_since = "8.0.0"\n'
        'management_over_sip_since = "9.0.0"\n'
        'http_auth = ["basic"]\n'
        "body_limit = 20480\n"
    )
    return directory
