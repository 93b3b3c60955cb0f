"""Prometheus `/metrics` (prometheus-client): the KPIs' counters and latency histogram.

Commands are counted as they end (a labelled child looked up once, then one increment and one
histogram observation); the listener's, the feed's and the relay's counters and the gauges
come from the KPI recorder's one-second samples (`KpiRecorder` listeners), off the command path.

With `serve --workers N` the workers share prometheus-client's multiprocess mode: each writes
its values to files under PROMETHEUS_MULTIPROC_DIR and a scrape on any worker sums them
(`MultiProcessCollector`). Otherwise (one worker, tests with several apps in one process) each
application has its own `CollectorRegistry`, so apps never share or collide.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from sipbridge.admin import kpi
from sipbridge.tracker.models import CommandLogEntry

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

LATENCY_BUCKETS_S = (*(bound / 1000 for bound in kpi.LATENCY_BOUNDS_MS), float("inf"))


def enable_multiprocess(directory: Path, *, fresh: bool) -> None:
    """Multiprocess mode for this process and the workers it starts (they inherit the
    environment). `fresh` (worker 0, at start) empties the directory: files of an earlier run
    would otherwise add to this run's counters. Must run before the first metric is built
    (prometheus_client picks its value class then: `values.get_value_class`)."""
    if fresh and directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def worker_exited(pid: int) -> None:
    """A worker process ended: its live gauges stop counting (its counters stay summed)."""
    if multiprocess_enabled():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


# KPI counter name -> (metric attribute, label values): those taken from the recorder's samples.
def _sampled(name: str) -> tuple[str, tuple[str, ...]] | None:
    group, element, rest = name.split("/", 2)
    if element == "global":
        return _GLOBAL_SAMPLED.get(name)
    entity = rest.rpartition("/")[0]
    if group == "inbound":
        if element == "method":
            return "sip_requests", (entity,)
        if element == "refusal":
            return "sip_refusals", (entity,)
        if element == "status":
            return "sip_responses", (entity,)
    return None


_GLOBAL_SAMPLED: dict[str, tuple[str, tuple[str, ...]]] = {
    "registrations/global/registers": ("registers", ()),
    **{
        f"registrations/global/{change}": ("registration_changes", (change,))
        for change in ("bound", "unbound", "refused", "expired")
    },
    "dialogEvents/global/dialogNotifies": ("event_notifies", ("dialog", "received")),
    "dialogEvents/global/dialogRefused": ("event_notifies", ("dialog", "refused")),
    "dialogEvents/global/regNotifies": ("event_notifies", ("reg", "received")),
    "dialogEvents/global/regRefused": ("event_notifies", ("reg", "refused")),
    "inbound/global/received": ("sip_messages", ()),
    "inbound/global/retransmissions": ("sip_retransmissions", ()),
    "relay/global/received": ("relays", ("received",)),
    "relay/global/succeeded": ("relays", ("succeeded",)),
    "relay/global/refused": ("relays", ("refused",)),
}

_GAUGES = {
    "queue/global/depth": "queue_depth",
    "queue/global/onWire": "commands_on_wire",
    "queue/global/waiting": "commands_waiting",
    "registrations/global/active": "registrations_active",
}


class Metrics:
    """The command observer and KPI sample listener that keeps the Prometheus metrics."""

    def __init__(self) -> None:
        self._multiprocess = multiprocess_enabled()
        # In multiprocess mode the values live in files; the registry only names them.
        registry = CollectorRegistry(auto_describe=True)
        self._registry = registry
        live: Literal["livesum"] = "livesum"  # a worker's gauges leave the sum when it dies
        self.commands = Counter(
            "sipbridge_commands",
            "Commands ended, by outcome (ok or the error) and transport",
            ["outcome", "transport"],
            registry=registry,
        )
        self.late_answers = Counter(
            "sipbridge_late_answers", "Final answers after a 504", registry=registry
        )
        self.latency = Histogram(
            "sipbridge_command_latency_seconds",
            "Latency of commands sent to a phone, request to final answer",
            ["transport"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "sipbridge_queue_depth",
            "Commands on the wire or waiting",
            registry=registry,
            multiprocess_mode=live,
        )
        self.commands_on_wire = Gauge(
            "sipbridge_commands_on_wire",
            "Commands sent, not yet answered",
            registry=registry,
            multiprocess_mode=live,
        )
        self.commands_waiting = Gauge(
            "sipbridge_commands_waiting",
            "Commands waiting behind another to the same phone",
            registry=registry,
            multiprocess_mode=live,
        )
        self.registrations_active = Gauge(
            "sipbridge_registrations_active",
            "Phones registered in the tracker",
            registry=registry,
            multiprocess_mode=live,
        )
        self.registers = Counter(
            "sipbridge_sip_registers", "REGISTER requests received", registry=registry
        )
        self.registration_changes = Counter(
            "sipbridge_registrations",
            "Registration changes: bound, unbound, refused, expired",
            ["change"],
            registry=registry,
        )
        self.event_notifies = Counter(
            "sipbridge_event_notifies",
            "Dialog and reg event NOTIFYs, received and refused",
            ["package", "result"],
            registry=registry,
        )
        self.sip_messages = Counter(
            "sipbridge_sip_messages", "SIP messages received by the listener", registry=registry
        )
        self.sip_retransmissions = Counter(
            "sipbridge_sip_retransmissions",
            "Requests absorbed as retransmissions",
            registry=registry,
        )
        self.sip_requests = Counter(
            "sipbridge_sip_requests",
            "New SIP requests by method (unknown: other)",
            ["method"],
            registry=registry,
        )
        self.sip_refusals = Counter(
            "sipbridge_sip_refusals",
            "SIP messages or connections refused, by reason",
            ["reason"],
            registry=registry,
        )
        self.sip_responses = Counter(
            "sipbridge_sip_responses",
            "Final SIP responses sent, by status",
            ["status"],
            registry=registry,
        )
        self.relays = Counter(
            "sipbridge_pbx_relays",
            "ACTION-URI NOTIFYs relayed from PBXs",
            ["result"],
            registry=registry,
        )
        self._command_children: dict[tuple[str, str], Counter] = {}
        self._latency_children: dict[str, Histogram] = {}

    # -- the command path: a dict lookup, an increment, an observation ------------------------

    def command_ended(self, entry: CommandLogEntry, *, written: bool) -> None:
        transport = entry.transport or "none"
        key = (entry.outcome, transport)
        child = self._command_children.get(key)
        if child is None:
            child = self._command_children[key] = self.commands.labels(*key)
        child.inc()
        if entry.latency_ms is not None and kpi.classify(entry)[1]:
            timer = self._latency_children.get(transport)
            if timer is None:
                timer = self._latency_children[transport] = self.latency.labels(transport)
            timer.observe(entry.latency_ms / 1000)

    def late_outcome(self, entry: CommandLogEntry, outcome: str) -> None:
        self.late_answers.inc()

    # -- the recorder's samples ----------------------------------------------------------------

    def sampled(self, grown: Mapping[str, float], gauges: Mapping[str, float]) -> None:
        for name, delta in grown.items():
            if delta <= 0:
                continue
            target = _sampled(name)
            if target is None:
                continue
            attribute, labels = target
            metric: Counter = getattr(self, attribute)
            (metric.labels(*labels) if labels else metric).inc(delta)
        for name, attribute in _GAUGES.items():
            if name in gauges:
                gauge: Gauge = getattr(self, attribute)
                gauge.set(gauges[name])

    # -- a scrape ------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The exposition text; in multiprocess mode, every worker's files summed (file
        reads: call it off the event loop)."""
        if not self._multiprocess:
            return generate_latest(self._registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
