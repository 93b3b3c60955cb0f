"""bench/run: sipbridge against Kamailio, bare pjsua2 and sipp, in one run, on one machine.

Every process listens on 127.0.0.1 only, on ports picked here; every load loop is bounded in
count and time. The table and the ratios go to stdout; figures are never asserted here.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.procs import (
    HOST,
    Service,
    cpu_seconds,
    free_port,
    peak_rss_mb,
    reset_peak,
    rss_mb,
    wait_http,
    wait_udp_bound,
)
from bench.stats import histogram_percentile, percentile_ms

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
API_KEY = "bench-key-0123456789"
BATCH = 1000
# Kamailio tuning (docs/performance.md): workers for 2 cores, shared memory for tm's finished
# transactions (kept for the wait timer, 5 s: 100,000 at 20k/s, a few KB each).
KAMAILIO_CHILDREN = 2
KAMAILIO_TCP_CHILDREN = 2
KAMAILIO_SHM_MB = 1024
KAMAILIO_PKG_MB = 16
# sipbridge's worker processes (`serve --workers`): one per core, like Kamailio's UDP workers.
SIPBRIDGE_WORKERS = 2


@dataclass
class Row:
    """One measured point."""

    system: str
    conns: int
    commands: int
    seconds: float
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    p999_ms: float = math.nan
    errors: int = 0
    crossed: int = 0
    cpu_us: float = math.nan
    rss_mb: float = math.nan
    loadgen_cpu: float = math.nan  # % of one core
    phone_cpu: float = math.nan
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.commands / self.seconds if self.seconds else 0.0


@dataclass
class Config:
    quick: bool
    duration: float
    levels: tuple[int, ...]
    phones: int
    calls: int
    tracker_items: int
    workdir: Path
    only: tuple[str, ...]
    kamailio_workers: tuple[int, int] = (KAMAILIO_CHILDREN, KAMAILIO_TCP_CHILDREN)
    workers: int = SIPBRIDGE_WORKERS
    preload: str | None = None  # LD_PRELOAD for sipbridge (--jemalloc)
    rounds: int = 5  # slices per point for sipbridge and Kamailio, alternating (--rounds)


# -- helpers ------------------------------------------------------------------------------------


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _bench_line(output: str) -> dict[str, float]:
    for line in output.splitlines():
        if line.startswith("BENCH "):
            parsed: dict[str, float] = json.loads(line[6:])
            return parsed
    raise RuntimeError(f"no BENCH line in output:\n{output[-2000:]}")


def _http(method: str, url: str, body: object | None = None, timeout: float = 30) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {API_KEY}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise SystemExit(f"bench: {tool} is not installed (scripts/dev installs it)")
    return path


def _started_or_stopped(service: Service, wait: Callable[[], object]) -> None:
    """Wait for a service to be ready; stop it (never leave it behind) if it is not."""
    try:
        wait()
    except BaseException:
        service.stop()
        raise


# -- the peers ----------------------------------------------------------------------------------


class Phone:
    """sipp playing the Poly phones: answers every NOTIFY 200, reason = the command's Ref."""

    def __init__(self, config: Config) -> None:
        self.port = free_port()
        self.service = Service.start(
            "sipp-phone",
            [
                _require("sipp"),
                "-sf", str(BENCH / "sip" / "phone_echo.xml"),
                "-i", HOST, "-p", str(self.port), "-t", "u1",
                "-buff_size", "4194304",
                "-deadcall_wait", "5000",
                "-nostdin", "-trace_err", "-error_file", str(config.workdir / "phone.err"),
            ],
            config.workdir,
        )  # fmt: skip
        _started_or_stopped(self.service, lambda: wait_udp_bound(self.port, self.service))


class Sipbridge:
    """`sipbridge serve` as its own process, settings from the environment."""

    def __init__(self, config: Config, data_dir: Path, name: str = "sipbridge") -> None:
        self.config = config
        self.http_port = free_port()
        self.sip_port = free_port()
        self.listen_port = free_port()  # the SIP listener (REGISTER copies, PBX relay)
        self.data_dir = data_dir
        self.name = name
        self.service = self._start()

    def _start(self) -> Service:
        env = {
            "SIPBRIDGE_HTTP_HOST": HOST,
            "SIPBRIDGE_HTTP_PORT": str(self.http_port),
            "SIPBRIDGE_SIP_HOST": HOST,
            "SIPBRIDGE_SIP_PORT": str(self.sip_port),
            "SIPBRIDGE_LISTEN_PORT": str(self.listen_port),
            # One registrar replicating every phone's REGISTER is one source: the listener's
            # per-source limit (200/s by default) would pace the REGISTER load, not measure it.
            "SIPBRIDGE_SIP_RATE_LIMIT": "1000000",
            "SIPBRIDGE_SIP_RATE_BURST": "100000",
            "SIPBRIDGE_DATA_DIR": str(self.data_dir),
            "SIPBRIDGE_API_KEYS": API_KEY,
            "SIPBRIDGE_PHONE_QUEUE_LIMIT": "16",
            "SIPBRIDGE_LOG_LEVEL": "WARNING",
            "SIPBRIDGE_WORKERS": str(self.config.workers),
        }
        if self.config.preload:
            env["LD_PRELOAD"] = self.config.preload
        argv = [str(ROOT / ".venv" / "bin" / "sipbridge"), "serve"]
        service = Service.start(self.name, argv, self.config.workdir, env)
        _started_or_stopped(service, lambda: wait_http(f"{self.url}/v1/health", service))
        self._wait_for_workers(service)
        return service

    def _wait_for_workers(self, service: Service, timeout: float = 20) -> None:
        """Until every worker answers /v1/health (each new connection may reach another)."""
        seen: set[object] = set()
        deadline = time.monotonic() + timeout
        while len(seen) < self.config.workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only workers {sorted(map(str, seen))} answered in {timeout} s")
            service.check_alive()
            answer = _http("GET", f"{self.url}/v1/health")
            assert isinstance(answer, dict)
            seen.add(answer.get("worker"))
            time.sleep(0.02)

    def restart(self) -> float:
        """Stop (SIGTERM) and start again; seconds from start until it serves again."""
        self.service.stop()
        started = time.monotonic()
        self.service = self._start()
        return time.monotonic() - started

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    def load(self, phones: int, calls: int, sip_port: int) -> float:
        """Phones p<n> all at the bench phone's port, calls bench-<i>@bench on p<i % phones>."""
        started = time.monotonic()
        for first in range(0, phones, BATCH):
            items = [
                {"id": f"p{n}", "contact": f"sip:p{n}@{HOST}:{sip_port}", "expires": 86400}
                for n in range(first, min(phones, first + BATCH))
            ]
            _http("PUT", f"{self.url}/v1/phones", {"phones": items})
        for first in range(0, calls, BATCH):
            items = [
                {"call_id": f"bench-{i}@bench", "phone": f"p{i % phones}"}
                for i in range(first, min(calls, first + BATCH))
            ]
            _http("PUT", f"{self.url}/v1/calls", {"calls": items})
        return time.monotonic() - started


class Kamailio:
    """Kamailio relaying tm.t_uac_wait JSON-RPC (over xhttp) to the bench phone."""

    def __init__(self, config: Config) -> None:
        self.http_port = free_port()
        self.sip_port = free_port()
        rundir = config.workdir / "kamailio"
        rundir.mkdir()
        template = (BENCH / "kamailio" / "relay.cfg").read_text()
        cfg = rundir / "kamailio.cfg"
        cfg.write_text(
            template
            % {
                "sip_port": self.sip_port,
                "http_port": self.http_port,
                "children": config.kamailio_workers[0],
                "tcp_children": config.kamailio_workers[1],
            }
        )
        argv = [
            _require("kamailio"),
            "-f", str(cfg), "-m", str(KAMAILIO_SHM_MB), "-M", str(KAMAILIO_PKG_MB),
            "-E", "-DD", "-P", str(rundir / "kamailio.pid"), "-w", str(rundir),
            "-Y", str(rundir),
        ]  # fmt: skip
        self.service = Service.start("kamailio", argv, config.workdir)
        version = b'{"jsonrpc": "2.0", "method": "core.version", "id": 1}'
        url = f"http://{HOST}:{self.http_port}/RPC"
        _started_or_stopped(self.service, lambda: wait_http(url, self.service, data=version))


# -- measuring ----------------------------------------------------------------------------------


@contextmanager
def _window(pids: Callable[[], list[int]], phone: Phone | None) -> Iterator[dict[str, float]]:
    """CPU of the target, of our children (the load generator) and of the phone, over a block."""
    out: dict[str, float] = {}
    targets = pids()
    reset_peak(targets)
    before = (cpu_seconds(targets), _children_cpu(), phone_cpu(phone), time.monotonic())
    yield out
    targets = pids()
    out["cpu"] = cpu_seconds(targets) - before[0]
    out["loadgen"] = _children_cpu() - before[1]
    out["phone"] = phone_cpu(phone) - before[2]
    out["wall"] = time.monotonic() - before[3]
    out["rss"] = peak_rss_mb(targets)


def phone_cpu(phone: Phone | None) -> float:
    return 0.0 if phone is None else cpu_seconds([phone.service.pid])


@dataclass
class WrkRun:
    """What relay.lua reports for one wrk run."""

    counts: dict[str, float]  # the BENCH line
    latency_us: dict[int, int]  # relay.lua's own timing of each request: microseconds -> requests


def _latency_line(output: str) -> dict[int, int]:
    for line in output.splitlines():
        if line.startswith("BENCH_LATENCY"):
            pairs = (item.split(":") for item in line.split()[1:])
            return {int(us): int(n) for us, n in pairs}
    raise RuntimeError(f"no BENCH_LATENCY line in output:\n{output[-2000:]}")


def wrk(
    target: str, port: int, conns: int, seconds: float, config: Config, sip_port: int,
    rate: int = 0, first: int = 0,
) -> WrkRun:  # fmt: skip
    env = {
        **os.environ,
        "BENCH_TARGET": target,
        "BENCH_CALLS": str(config.calls),
        "BENCH_PHONES": str(config.phones),
        "BENCH_THREADS": "1",
        "BENCH_SIP_PORT": str(sip_port),
        "BENCH_API_KEY": API_KEY,
        "BENCH_RATE": str(rate),
        "BENCH_FIRST": str(first),
    }
    argv = [
        _require("wrk"), "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
        "-s", str(BENCH / "relay.lua"), f"http://{HOST}:{port}",
    ]  # fmt: skip
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-2000:]}")
    run = WrkRun(_bench_line(done.stdout), _latency_line(done.stdout))
    if done.stderr.strip():
        print(done.stderr.strip()[-600:], file=sys.stderr)
    return run


@dataclass
class Slice:
    """One wrk run against one system, and the CPU and memory it cost the system."""

    run: WrkRun
    window: dict[str, float]


def relay_slice(
    system: str, service: Service, port: int, conns: int, seconds: float, first: int,
    config: Config, phone: Phone,
) -> Slice:  # fmt: skip
    with _window(service.pids, phone) as window:
        run = wrk(system, port, conns, seconds, config, phone.port, first=first)
    service.check_alive()
    return Slice(run, window)


def combine(system: str, conns: int, slices: list[Slice]) -> Row:
    """One row from a point's slices: counts and CPU summed, percentiles from the merged
    latency histograms, RSS the highest peak."""
    counts = [s.run.counts for s in slices]
    ok = sum(c["ok"] for c in counts)
    lost = errors = crossed = 0
    for c in counts:
        answered = c["ok"] + c["crossed"] + c["failed"]
        # wrk stops with up to `conns` requests still in flight; more missing means lost
        # replies. wrk also builds one request per thread (-t1) that it never sends.
        lost += max(0, int(c["sent"] - answered - c["unexpected"] - conns - 1))
        errors += int(c["failed"] + c["crossed"] + c["unexpected"])
        errors += sum(int(c[k]) for k in ("connect", "read", "write", "timeout"))
        crossed += int(c["crossed"])
    latency: dict[int, int] = {}
    for s in slices:
        for us, n in s.run.latency_us.items():
            latency[us] = latency.get(us, 0) + n
    wall = sum(s.window["wall"] for s in slices)
    return Row(
        system=system,
        conns=conns,
        commands=int(ok),
        seconds=sum(c["duration_us"] for c in counts) / 1e6,
        p50_ms=histogram_percentile(latency, 50) / 1000,
        p99_ms=histogram_percentile(latency, 99) / 1000,
        p999_ms=histogram_percentile(latency, 99.9) / 1000,
        errors=errors + lost,
        crossed=crossed,
        cpu_us=sum(s.window["cpu"] for s in slices) / max(1, ok) * 1e6,
        rss_mb=max(s.window["rss"] for s in slices),
        loadgen_cpu=sum(s.window["loadgen"] for s in slices) / wall * 100,
        phone_cpu=sum(s.window["phone"] for s in slices) / wall * 100,
        notes=[f"{len(slices)} slices"],
    )


def bare_point(conns: int, config: Config, phone: Phone) -> Row:
    argv = [
        str(PYTHON), "-m", "bench.bare_pjsua2", "--sip-port", str(phone.port),
        "--concurrency", str(conns), "--duration", str(config.duration),
        "--phones", str(config.phones), "--calls", str(config.calls),
    ]  # fmt: skip
    with _window(lambda: [], phone) as w:
        done = subprocess.run(
            argv, cwd=ROOT, capture_output=True, text=True, timeout=config.duration + 60,
            check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"bare pjsua2 sender failed: {done.stderr[-2000:]}")
    result = _bench_line(done.stdout)
    return Row(
        system="bare-pjsua2",
        conns=conns,
        commands=int(result["ok"]),
        seconds=result["elapsed"],
        p50_ms=result["p50_ms"],
        p99_ms=result["p99_ms"],
        p999_ms=result["p999_ms"],
        errors=int(result["failed"] + result["crossed"]),
        crossed=int(result["crossed"]),
        cpu_us=result["cpu_s"] / max(1, result["ok"]) * 1e6,
        rss_mb=result["peak_rss_mb"],
        phone_cpu=w["phone"] / w["wall"] * 100,
    )


def sipp_point(conns: int, config: Config, phone: Phone) -> Row:
    stats = config.workdir / f"uac-{conns}.csv"
    argv = [
        _require("sipp"), "-sf", str(BENCH / "sip" / "uac_notify.xml"),
        "-i", HOST, "-p", str(free_port()), f"{HOST}:{phone.port}",
        "-r", "1000000", "-l", str(conns), "-m", "100000000",
        "-timeout", f"{max(1, round(config.duration))}s", "-buff_size", "4194304",
        "-nostdin", "-trace_stat", "-stf", str(stats), "-fd", "1",
    ]  # fmt: skip
    with _window(lambda: [], phone) as w:
        subprocess.run(
            argv, cwd=config.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            timeout=config.duration + 60, check=False,
        )  # fmt: skip
    lines = stats.read_text().splitlines()
    header = lines[0].split(";")
    last = dict(zip(header, lines[-1].split(";"), strict=False))

    def epoch(column: str) -> float:
        return float(last[column].split("\t")[-1])

    ok = int(last["SuccessfulCall(C)"])
    return Row(
        system="sipp-uac",
        conns=conns,
        commands=ok,
        seconds=epoch("CurrentTime") - epoch("StartTime"),
        errors=int(last["FailedCall(C)"]),
        cpu_us=w["loadgen"] / max(1, ok) * 1e6,
        phone_cpu=w["phone"] / w["wall"] * 100,
    )


# -- the phases ---------------------------------------------------------------------------------


def relay(config: Config) -> list[Row]:
    phone = Phone(config)
    rows: list[Row] = []
    bridge = kamailio = None
    try:
        bridge = Sipbridge(config, config.workdir / "relay-data")
        loaded = bridge.load(config.phones, config.calls, phone.port)
        print(f"# preloaded {config.phones} phones, {config.calls} calls in {loaded:.1f} s")
        kamailio = Kamailio(config)
        # Warm-up, not measured: first connections, caches, pjsip's pools.
        wrk("sipbridge", bridge.http_port, 50, 1, config, phone.port)
        wrk("kamailio", kamailio.http_port, 50, 1, config, phone.port)
        peers = [
            (name, peer.service, peer.http_port)
            for name, peer in (("sipbridge", bridge), ("kamailio", kamailio))
            if name in config.only
        ]
        for conns in config.levels:
            rows.extend(_interleaved(peers, conns, config, phone))
            if "bare" in config.only:
                rows.append(bare_point(conns, config, phone))
            if "sipp" in config.only and conns > 1:  # sipp's scheduler paces -l 1 by its tick
                rows.append(sipp_point(conns, config, phone))
            for row in rows:
                if row.conns == conns:
                    print("# " + _format_row(row), flush=True)
        phone.service.check_alive()
    finally:
        for peer in (bridge, kamailio):
            if peer is not None:
                peer.service.stop()
        phone.service.stop()
    return rows


def _interleaved(
    peers: list[tuple[str, Service, int]], conns: int, config: Config, phone: Phone
) -> list[Row]:
    """sipbridge and Kamailio in alternating slices (ABBA order), so that whatever else the
    machine does while a point is measured falls on both alike, not on one peer's 10 s."""
    rounds = max(1, min(config.rounds, math.floor(config.duration)))
    seconds = config.duration / rounds
    slices: dict[str, list[Slice]] = {name: [] for name, _, _ in peers}
    first = dict.fromkeys(slices, 0)
    for index in range(rounds):
        for name, service, port in peers if index % 2 == 0 else peers[::-1]:
            piece = relay_slice(name, service, port, conns, seconds, first[name], config, phone)
            slices[name].append(piece)
            first[name] += int(piece.run.counts["sent"])
    return [combine(name, conns, slices[name]) for name, _, _ in peers]


def tracker_scale(config: Config) -> dict[str, float]:
    """N phones and N calls through the batch feed; lookups, memory, restart."""
    from sipbridge.tracker import TrackerStore

    items = config.tracker_items
    data_dir = config.workdir / "tracker-data"
    bridge = Sipbridge(config, data_dir, name="sipbridge-tracker")
    try:
        loaded = bridge.load(items, items, sip_port=5060)
        # A fifth as REGISTERs (p1..pN/5, refreshing phones the feed created): the listener
        # takes a few hundred a second, and the run must stay bounded in time.
        registered = _register_load(bridge, items // 5, config)
        rss_loaded = rss_mb(bridge.service.pids())
        hwm_loaded = peak_rss_mb(bridge.service.pids())
        # Lookups as a command does them (TrackerStore.locate), on the live database file.
        store = TrackerStore(data_dir / "tracker.sqlite3")
        ids = [f"bench-{random.randrange(items)}@bench" for _ in range(20_000)]
        timings = []
        for call_id in ids:
            started = time.perf_counter()
            store.locate(call_id)
            timings.append(time.perf_counter() - started)
        store.close()
        # HTTP GET of a call, one at a time (client included).
        http_timings = []
        for call_id in ids[:2000]:
            started = time.perf_counter()
            _http("GET", f"{bridge.url}/v1/calls/{call_id}")
            http_timings.append(time.perf_counter() - started)
        restart = bridge.restart()
        started = time.monotonic()
        served = sum(
            _http("GET", f"{bridge.url}/v1/calls/bench-{i}@bench") is not None
            for i in random.sample(range(items), 200)
        )
        first_ok = restart + (time.monotonic() - started) / 200
        all_calls = _count_rows(data_dir / "tracker.sqlite3")
        rss_restarted = rss_mb(bridge.service.pids())
    finally:
        bridge.service.stop()
    return {
        "items": items,
        "load_s": loaded,
        "load_per_s": 2 * items / loaded,
        **registered,
        "rss_loaded_mb": rss_loaded,
        "peak_rss_loading_mb": hwm_loaded,
        "locate_p50_ms": percentile_ms(timings, 50),
        "locate_p99_ms": percentile_ms(timings, 99),
        "http_get_p50_ms": percentile_ms(http_timings, 50),
        "http_get_p99_ms": percentile_ms(http_timings, 99),
        "restart_to_serving_s": first_ok,
        "served_after_restart": served,
        "phones_and_calls_after_restart": all_calls,
        "rss_after_restart_mb": rss_restarted,
    }


def _register_load(bridge: Sipbridge, items: int, config: Config) -> dict[str, float]:
    """`items` REGISTERs (phones p1..pN) from sipp to the SIP listener, 200 in flight."""
    stats = config.workdir / "register.csv"
    argv = [
        _require("sipp"), "-sf", str(BENCH / "sip" / "uac_register.xml"),
        "-i", HOST, "-p", str(free_port()), f"{HOST}:{bridge.listen_port}",
        "-r", "1000000", "-l", "200", "-m", str(items), "-timeout", "120s",
        "-buff_size", "4194304", "-nostdin", "-trace_stat", "-stf", str(stats), "-fd", "1",
    ]  # fmt: skip
    subprocess.run(
        argv, cwd=config.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        timeout=180, check=False,
    )  # fmt: skip
    lines = stats.read_text().splitlines()
    last = dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))
    elapsed = float(last["CurrentTime"].split("\t")[-1]) - float(last["StartTime"].split("\t")[-1])
    ok = int(last["SuccessfulCall(C)"])
    return {
        "registers": items,
        "registers_ok": ok,
        "registers_failed": int(last["FailedCall(C)"]),
        "registers_per_s": ok / elapsed if elapsed else 0.0,
    }


def _count_rows(path: Path) -> float:
    import sqlite3

    with sqlite3.connect(path) as db:
        phones = db.execute("SELECT count(*) FROM phones").fetchone()[0]
        calls = db.execute("SELECT count(*) FROM calls").fetchone()[0]
    db.close()
    return float(phones + calls)


def soak(config: Config, seconds: float, rate: int) -> dict[str, object]:
    """sipbridge at a steady `rate` for `seconds`; RSS sampled every 10 s."""
    phone = Phone(config)
    bridge = Sipbridge(config, config.workdir / "soak-data")
    try:
        bridge.load(config.phones, config.calls, phone.port)
        samples: list[tuple[float, float]] = []
        env_seconds = seconds
        started = time.monotonic()
        with _window(bridge.service.pids, phone) as w:
            process = subprocess.Popen(
                [
                    _require("wrk"), "-t1", "-c50", f"-d{round(env_seconds)}s", "--timeout",
                    "10s", "-s", str(BENCH / "relay.lua"), bridge.url,
                ],
                env={
                    **os.environ, "BENCH_TARGET": "sipbridge", "BENCH_CALLS": str(config.calls),
                    "BENCH_PHONES": str(config.phones), "BENCH_THREADS": "1",
                    "BENCH_API_KEY": API_KEY, "BENCH_RATE": str(rate),
                },
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            try:
                while process.poll() is None and time.monotonic() - started < seconds + 60:
                    samples.append((time.monotonic() - started, rss_mb(bridge.service.pids())))
                    time.sleep(min(10.0, max(1.0, seconds / 30)))
                out, _ = process.communicate(timeout=60)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        result = _bench_line(out)
    finally:
        bridge.service.stop()
        phone.service.stop()
    return {
        "seconds": result["duration_us"] / 1e6,
        "rate": result["ok"] / (result["duration_us"] / 1e6),
        "errors": int(result["failed"] + result["crossed"] + result["unexpected"]),
        "p99_ms": result["p99_us"] / 1000,
        "cpu_us": w["cpu"] / max(1, result["ok"]) * 1e6,
        "rss_samples_mb": [(round(t), round(m, 1)) for t, m in samples],
        **_rss_trend(samples),
    }


def _rss_trend(samples: list[tuple[float, float]], warmup: float = 60.0) -> dict[str, float]:
    """RSS after the warm-up (pjsip keeps every transaction for Timer K, 5 s, so the working
    set grows with the rate first): its range and least-squares slope in MB per minute."""
    steady = [(t, m) for t, m in samples if t >= warmup]
    if len(steady) < 3:
        return {}
    n = len(steady)
    mean_t = sum(t for t, _ in steady) / n
    mean_m = sum(m for _, m in steady) / n
    slope = sum((t - mean_t) * (m - mean_m) for t, m in steady) / sum(
        (t - mean_t) ** 2 for t, _ in steady
    )
    return {
        "rss_after_warmup_mb": round(steady[0][1], 1),
        "rss_end_mb": round(steady[-1][1], 1),
        "rss_max_mb": round(max(m for _, m in steady), 1),
        "rss_slope_mb_per_min": round(slope * 60, 2),
    }


# -- output -------------------------------------------------------------------------------------

HEADER = (
    f"{'system':<12} {'conns':>5} {'cmd/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'p99.9':>7} "
    f"{'errors':>6} {'CPU us/cmd':>10} {'RSS MB':>7} {'wrk CPU%':>8} {'phone CPU%':>10}"
)


def _num(value: float, width: int, digits: int = 2) -> str:
    return f"{'-':>{width}}" if math.isnan(value) else f"{value:>{width}.{digits}f}"


def _format_row(row: Row) -> str:
    return (
        f"{row.system:<12} {row.conns:>5} {row.rate:>8.0f} {_num(row.p50_ms, 7)} "
        f"{_num(row.p99_ms, 7)} {_num(row.p999_ms, 7)} {row.errors:>6} {_num(row.cpu_us, 10, 0)} "
        f"{_num(row.rss_mb, 7, 0)} {_num(row.loadgen_cpu, 8, 0)} {_num(row.phone_cpu, 10, 0)}"
    )


def _ratio(a: float, b: float) -> str:
    return "-" if not b or math.isnan(a) or math.isnan(b) else f"{a / b:.2f}"


def report(rows: list[Row]) -> list[str]:
    lines = [HEADER, "-" * len(HEADER), *(_format_row(r) for r in rows), ""]
    by = {(r.system, r.conns): r for r in rows}
    lines.append(
        f"{'conns':>5}  {'sb/kam cmd/s':>12} {'sb/kam p50':>10} {'sb/kam CPU':>10} "
        f"{'sb/bare cmd/s':>13} {'sb/bare CPU':>11} {'sb/sipp cmd/s':>13}"
    )
    for conns in sorted({r.conns for r in rows}):
        sb, kam = by.get(("sipbridge", conns)), by.get(("kamailio", conns))
        bare, sipp = by.get(("bare-pjsua2", conns)), by.get(("sipp-uac", conns))
        if sb is None:
            continue
        lines.append(
            f"{conns:>5}  "
            f"{_ratio(sb.rate, kam.rate) if kam else '-':>12} "
            f"{_ratio(sb.p50_ms, kam.p50_ms) if kam else '-':>10} "
            f"{_ratio(sb.cpu_us, kam.cpu_us) if kam else '-':>10} "
            f"{_ratio(sb.rate, bare.rate) if bare else '-':>13} "
            f"{_ratio(sb.cpu_us, bare.cpu_us) if bare else '-':>11} "
            f"{_ratio(sb.rate, sipp.rate) if sipp else '-':>13}"
        )
    lines.extend(["", *_targets(by)])
    return lines


def _targets(by: dict[tuple[str, int], Row]) -> list[str]:
    """The issue's targets, as figures: met / MISSED (never asserted)."""
    out = ["targets (issue #7):"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    top = by.get(("sipbridge", 200))
    if top is not None:
        out.append(f"  zero errors, nothing crossed at 200: {top.errors} errors -> "
                   f"{verdict(top.errors == 0)}")  # fmt: skip
    for conns in (50, 200):
        sb, kam = by.get(("sipbridge", conns)), by.get(("kamailio", conns))
        if sb and kam and kam.rate:
            ratio = sb.rate / kam.rate
            out.append(f"  throughput >= 0.5x Kamailio at {conns}: {ratio:.2f}x -> "
                       f"{verdict(ratio >= 0.5)}")  # fmt: skip
    sb, kam = by.get(("sipbridge", 1)), by.get(("kamailio", 1))
    if sb and kam:
        ratio = sb.p50_ms / kam.p50_ms
        out.append(f"  p50 at 1 conn <= 2x Kamailio: {ratio:.2f}x -> {verdict(ratio <= 2)}")
    cpu = [
        by[("sipbridge", c)].cpu_us / by[("kamailio", c)].cpu_us
        for c in (1, 50, 200)
        if ("sipbridge", c) in by and ("kamailio", c) in by
    ]
    if cpu:
        worst = max(cpu)
        out.append(f"  CPU/cmd <= 3x Kamailio: worst {worst:.2f}x -> {verdict(worst <= 3)}")
    return out


def _jemalloc() -> str:
    found = sorted(Path("/usr/lib").glob("*/libjemalloc.so.2")) + sorted(
        Path("/usr/lib").glob("libjemalloc.so.2")
    )
    if not found:
        raise SystemExit("--jemalloc: libjemalloc.so.2 not found (apt-get install libjemalloc2)")
    return str(found[0])


def _pair(text: str) -> tuple[int, int]:
    first, second = text.split(",")
    return int(first), int(second)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: ~2 s per point")
    parser.add_argument("--duration", type=float, help="seconds per point (default 10, quick 2)")
    parser.add_argument(
        "--soak", type=float, metavar="SECONDS", nargs="?", const=600.0,
        help="also run the steady-rate soak (default 600 s at --soak-rate)",
    )  # fmt: skip
    parser.add_argument("--soak-rate", type=int, default=2000)
    parser.add_argument(
        "--rounds", type=int, default=5,
        help="measure sipbridge and Kamailio in this many alternating slices per point "
        "(default 5; at most one per second of --duration)",
    )  # fmt: skip
    parser.add_argument("--only", default="sipbridge,kamailio,bare,sipp,tracker",
                        help="comma-separated parts to run")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--kamailio-workers", default=f"{KAMAILIO_CHILDREN},{KAMAILIO_TCP_CHILDREN}",
        help="Kamailio's UDP and TCP worker counts (children,tcp_children)",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=int, default=SIPBRIDGE_WORKERS,
        help=f"sipbridge's worker processes (serve --workers; default {SIPBRIDGE_WORKERS})",
    )  # fmt: skip
    parser.add_argument(
        "--jemalloc", action="store_true",
        help="run sipbridge with jemalloc (LD_PRELOAD; Debian package libjemalloc2)",
    )  # fmt: skip
    args = parser.parse_args()
    quick = bool(args.quick)
    workdir = Path(tempfile.mkdtemp(prefix="sipbridge-bench-"))
    config = Config(
        quick=quick,
        duration=args.duration or (2.0 if quick else 10.0),
        levels=(1, 50, 200),  # sipp-uac runs at 50 and 200 only (the ceiling)
        phones=1000,
        calls=20_000 if quick else 100_000,
        tracker_items=10_000 if quick else 100_000,
        workdir=workdir,
        only=tuple(args.only.split(",")),
        kamailio_workers=_pair(args.kamailio_workers),
        workers=args.workers,
        preload=_jemalloc() if args.jemalloc else None,
        rounds=args.rounds,
    )
    if config.rounds < 1:
        parser.error("--rounds must be 1 or more")
    load = os.getloadavg()
    print(
        f"# sipbridge bench: {os.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}, {config.duration:g} s per point, sipbridge workers {config.workers}, "
        f"Kamailio workers {config.kamailio_workers}, "
        f"{'jemalloc' if config.preload else 'glibc malloc'}, workdir {workdir}",
        flush=True,
    )
    results: dict[str, object] = {"load_before": load}
    relayed = {"sipbridge", "kamailio", "bare", "sipp"} & set(config.only)
    rows = relay(config) if relayed else []
    results["relay"] = [asdict(r) | {"rate": r.rate} for r in rows]
    if rows:
        print("\n".join(report(rows)))
    if "tracker" in config.only:
        scale = tracker_scale(config)
        results["tracker"] = scale
        print(f"\ntracker scale ({config.tracker_items} phones + {config.tracker_items} calls):")
        for key, value in scale.items():
            print(f"  {key:<32} {value:.4g}")
    if args.soak:
        result = soak(config, args.soak, args.soak_rate)
        results["soak"] = result
        print(f"\nsoak: {json.dumps(result)}")
    results["load_after"] = os.getloadavg()
    print(f"# load after: {results['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
