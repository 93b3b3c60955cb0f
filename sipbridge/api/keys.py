"""Typed keys for what the application holds (aiohttp `web.AppKey`)."""

from __future__ import annotations

from aiohttp import web

# The keys the device API reads too: one object each (admin/keys.py).
from sipbridge.admin.keys import (
    ALARM_LOG,
    ALARM_RULES,
    AUTH_THROTTLE,
    CREDENTIALS,
    KEY_RING,
    KPI_LOG,
    KPI_RECORDER,
    METRICS,
    METRICS_ALLOW,
    SETTINGS,
    STARTED_AT,
    STORE,
    USERS,
)
from sipbridge.admin.kpi import CommandCounters
from sipbridge.admin.telemetry import Telemetry
from sipbridge.commands import CallControl, Lanes
from sipbridge.pbx.relay import ActionUriRelay
from sipbridge.phone.access import PhoneAccessBook
from sipbridge.phone.http import PhoneHttpClient
from sipbridge.phone.profiles import ProfileBook
from sipbridge.sip.listener import ListenerSockets, SipListener
from sipbridge.sip.networks import PhoneNetworks
from sipbridge.sip.sender import NotifySender
from sipbridge.tracker.sip_feed import SipFeed
from sipbridge.tracker.subscriptions import DialogSubscriptions

SENDER = web.AppKey("sender", NotifySender)
CONTROL = web.AppKey("control", CallControl)
API_KEYS = web.AppKey("api_keys", frozenset)
PROFILES = web.AppKey("profiles", ProfileBook)
PHONE_HTTP = web.AppKey("phone_http", PhoneHttpClient)
PHONE_ACCESS = web.AppKey("phone_access", PhoneAccessBook)
LISTENER_SOCKETS = web.AppKey("listener_sockets", ListenerSockets)
LISTENER = web.AppKey("listener", SipListener)
SUBSCRIPTIONS = web.AppKey("subscriptions", DialogSubscriptions)
WORKER = web.AppKey("worker", int)
PHONE_NETWORKS = web.AppKey("phone_networks", PhoneNetworks)
LANES = web.AppKey("lanes", Lanes)
TELEMETRY = web.AppKey("telemetry", Telemetry)
KPI_COUNTERS = web.AppKey("kpi_counters", CommandCounters)
SIP_FEED = web.AppKey("sip_feed", SipFeed)
RELAY = web.AppKey("relay", ActionUriRelay)

__all__ = [
    "ALARM_LOG",
    "ALARM_RULES",
    "API_KEYS",
    "AUTH_THROTTLE",
    "CONTROL",
    "CREDENTIALS",
    "KEY_RING",
    "KPI_COUNTERS",
    "KPI_LOG",
    "KPI_RECORDER",
    "LANES",
    "LISTENER",
    "LISTENER_SOCKETS",
    "METRICS",
    "METRICS_ALLOW",
    "PHONE_ACCESS",
    "PHONE_HTTP",
    "PHONE_NETWORKS",
    "PROFILES",
    "RELAY",
    "SENDER",
    "SETTINGS",
    "SIP_FEED",
    "STARTED_AT",
    "STORE",
    "SUBSCRIPTIONS",
    "TELEMETRY",
    "USERS",
    "WORKER",
]
