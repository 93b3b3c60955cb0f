"""Typed keys for what the application holds (aiohttp `web.AppKey`)."""

from __future__ import annotations

from aiohttp import web

from sipbridge.api.throttle import FailureThrottle
from sipbridge.commands.journal import CommandLog
from sipbridge.config import Settings
from sipbridge.commands.control import CallControl
from sipbridge.phone.http import PhoneHttpClient
from sipbridge.phone.profiles import ProfileBook
from sipbridge.commands.plan import PhoneRoutes
from sipbridge.sip.listener import SipListener
from sipbridge.sip.networks import PhoneNetworks
from sipbridge.sip.sender import NotifySender
from sipbridge.tracker import TrackerStore
from sipbridge.tracker.sip_feed import SipFeed
from sipbridge.tracker.subscriptions import DialogSubscriptions

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", TrackerStore)
SENDER = web.AppKey("sender", NotifySender)
CONTROL = web.AppKey("control", CallControl)
API_KEYS = web.AppKey("api_keys", frozenset)
PROFILES = web.AppKey("profiles", ProfileBook)
PHONE_HTTP = web.AppKey("phone_http", PhoneHttpClient)
ROUTES = web.AppKey("routes", PhoneRoutes)
LISTENER = web.AppKey("listener", SipListener)
SIP_FEED = web.AppKey("sip_feed", SipFeed)
SUBSCRIPTIONS = web.AppKey("subscriptions", DialogSubscriptions)
COMMAND_LOG = web.AppKey("command_log", CommandLog)
WORKER = web.AppKey("worker", int)
PHONE_NETWORKS = web.AppKey("phone_networks", PhoneNetworks)
AUTH_THROTTLE = web.AppKey("auth_throttle", FailureThrottle)
