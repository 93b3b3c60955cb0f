"""What the KPI recorder samples each second, by KPI name (admin/kpi.py): the parts' own
counters read as they are (cumulative), and the gauges. Here, where every part is known, so
the parts need not know the KPI tree."""

from __future__ import annotations

from sipbridge.admin.kpi import CommandCounters
from sipbridge.admin.kpi_recorder import Probe
from sipbridge.commands import Lanes
from sipbridge.pbx.relay import ActionUriRelay
from sipbridge.sip.listener import ListenerStats
from sipbridge.tracker import TrackerStore
from sipbridge.tracker.sip_feed import FeedStats

_REFUSALS = {
    "malformed": "malformed",
    "forbidden": "forbidden",
    "rate_limited": "rateLimited",
    "strangers_unrecorded": "strangersUnrecorded",
    "connections_refused": "connectionsRefused",
    "handshakes_failed": "handshakesFailed",
}


def commands(counters: CommandCounters) -> Probe:
    return lambda: counters.values


def listener(stats: ListenerStats) -> Probe:
    def probe() -> dict[str, float]:
        values: dict[str, float] = {
            "inbound/global/received": stats.received,
            "inbound/global/retransmissions": stats.retransmissions,
        }
        for field, reason in _REFUSALS.items():
            values[f"inbound/refusal/{reason}/count"] = getattr(stats, field)
        for method, count in stats.by_method.items():
            values[f"inbound/method/{method}/requests"] = count
        for status, count in stats.by_status.items():
            values[f"inbound/status/{status}/responses"] = count
        return values

    return probe


def feed(stats: FeedStats) -> Probe:
    return lambda: {
        "registrations/global/registers": stats.registers,
        "registrations/global/bound": stats.bound,
        "registrations/global/unbound": stats.unbound,
        "registrations/global/refused": stats.registers_refused,
        "registrations/global/expired": stats.expired,
        "dialogEvents/global/dialogNotifies": stats.dialog_notifies,
        "dialogEvents/global/dialogRefused": stats.dialog_refused,
        "dialogEvents/global/regNotifies": stats.reg_notifies,
        "dialogEvents/global/regRefused": stats.reg_refused,
    }


def relay(relay: ActionUriRelay) -> Probe:
    stats = relay.stats
    return lambda: {
        "relay/global/received": stats.received,
        "relay/global/succeeded": stats.succeeded,
        "relay/global/refused": stats.refused,
    }


def queue(lanes: Lanes) -> Probe:
    def probe() -> dict[str, float]:
        on_wire, waiting = lanes.load()
        return {
            "queue/global/depth": on_wire + waiting,
            "queue/global/onWire": on_wire,
            "queue/global/waiting": waiting,
        }

    return probe


def registrations(store: TrackerStore) -> Probe:
    """The tracker's phones (one database for every worker: worker 0 alone reports it)."""
    return lambda: {"registrations/global/active": store.counts()[0]}
