"""Typed keys for what the application holds (aiohttp `web.AppKey`)."""

from __future__ import annotations

from aiohttp import web

from sipbridge.api.throttle import FailureThrottle
from sipbridge.commands import CallControl
from sipbridge.config import Settings
from sipbridge.phone.access import PhoneAccessBook
from sipbridge.phone.http import PhoneHttpClient
from sipbridge.phone.profiles import ProfileBook
from sipbridge.sip.listener import ListenerSockets, SipListener
from sipbridge.sip.networks import PhoneNetworks
from sipbridge.sip.sender import NotifySender
from sipbridge.tracker import TrackerStore
from sipbridge.tracker.subscriptions import DialogSubscriptions

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", TrackerStore)
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
AUTH_THROTTLE = web.AppKey("auth_throttle", FailureThrottle)
