"""Typed keys for what the application holds (aiohttp `web.AppKey`)."""

from __future__ import annotations

from aiohttp import web

from sipbridge.config import Settings
from sipbridge.control import CallControl
from sipbridge.sip.sender import NotifySender
from sipbridge.tracker import TrackerStore

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", TrackerStore)
SENDER = web.AppKey("sender", NotifySender)
CONTROL = web.AppKey("control", CallControl)
API_KEYS = web.AppKey("api_keys", frozenset)
