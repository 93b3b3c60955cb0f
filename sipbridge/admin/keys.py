"""Typed keys for what the device API reads from the application (aiohttp `web.AppKey`).
The front API's `api/keys.py` re-exports the ones both use, so each exists once."""

from __future__ import annotations

import ipaddress

from aiohttp import web

from sipbridge.admin.alarm_rules import AlarmRules
from sipbridge.admin.identity import KeyRing, UserGate
from sipbridge.admin.kpi_recorder import KpiRecorder
from sipbridge.admin.metrics import Metrics
from sipbridge.admin.throttle import FailureThrottle
from sipbridge.config import Settings
from sipbridge.tracker import TrackerStore
from sipbridge.tracker.alarm_log import AlarmLog
from sipbridge.tracker.credentials import Credentials
from sipbridge.tracker.kpi_log import KpiLog

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", TrackerStore)
AUTH_THROTTLE = web.AppKey("auth_throttle", FailureThrottle)
CREDENTIALS = web.AppKey("credentials", Credentials)
METRICS_ALLOW = web.AppKey(
    "metrics_allow", tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
)
STARTED_AT = web.AppKey("started_at", float)
USERS = web.AppKey("users", UserGate)
KEY_RING = web.AppKey("key_ring", KeyRing)
KPI_RECORDER = web.AppKey("kpi_recorder", KpiRecorder)
KPI_LOG = web.AppKey("kpi_log", KpiLog)
METRICS = web.AppKey("metrics", Metrics)
ALARM_LOG = web.AppKey("alarm_log", AlarmLog)
ALARM_RULES = web.AppKey("alarm_rules", AlarmRules)
