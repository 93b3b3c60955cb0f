"""Processes under test: start them on loopback, read their CPU time and memory from /proc."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import free_port

__all__ = [
    "HOST",
    "Service",
    "cpu_seconds",
    "family",
    "free_port",  # re-exported: one implementation for the tests and the bench
    "peak_rss_mb",
    "reset_peak",
    "rss_mb",
    "wait_http",
    "wait_udp_bound",
]

_TICKS = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"


def family(pid: int) -> list[int]:
    """`pid` and its direct children (Kamailio's workers are children of its main process)."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            pids.append(int(entry.name))
    return pids


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time of the processes so far (/proc/<pid>/stat utime + stime)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_mb(pids: Iterable[int]) -> float:
    """Sum of the processes' peak resident set (VmHWM) since start or `reset_peak`."""
    return sum(_status_kb(pid, "VmHWM") for pid in pids) / 1024


def rss_mb(pids: Iterable[int]) -> float:
    return sum(_status_kb(pid, "VmRSS") for pid in pids) / 1024


def reset_peak(pids: Iterable[int]) -> None:
    """Start a new VmHWM window (proc(5), clear_refs: 5 resets the peak RSS)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")


@dataclass
class Service:
    """A process we started, stopped by its own pid (and process group) only."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(
        cls, name: str, argv: Sequence[str], workdir: Path, env: dict[str, str] | None = None
    ) -> Service:
        log = workdir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        return cls(name=name, process=process, log=log)

    @property
    def pid(self) -> int:
        return self.process.pid

    def pids(self) -> list[int]:
        return family(self.pid)

    def alive(self) -> bool:
        return self.process.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited ({self.process.returncode}):\n{tail}")

    def stop(self, timeout: float = 10) -> None:
        if not self.alive():
            return
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.process.wait()


def wait_http(url: str, service: Service, timeout: float = 20, data: bytes | None = None) -> float:
    """Seconds until `url` answers (any HTTP status; POST `data` if given), or raise."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        service.check_alive()
        try:
            with urllib.request.urlopen(url, data=data, timeout=1):
                return time.monotonic() - started
        except urllib.error.HTTPError:
            return time.monotonic() - started
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{service.name} did not answer {url} within {timeout} s")


def wait_udp_bound(port: int, service: Service, timeout: float = 10) -> None:
    """Until something holds UDP `port` on 127.0.0.1 (sipp and Kamailio bind it)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        service.check_alive()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{service.name} did not bind UDP {port} within {timeout} s")
