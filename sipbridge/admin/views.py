"""The device API's navigation (manual 004 sections 4-5) and status (section 10).

Every folder answers `{"items": [{id, description, url}]}` built from the permission table, so
a resource added there is listed where it belongs. (The manual's own examples disagree: its
/alarms listing names the list "alarms", and its /api/v1 example points "alarms" at
/api/v1/actions; here every folder says "items" and every url is the resource's own.)
"""

from __future__ import annotations

import datetime
import time

from aiohttp import web

import sipbridge
from sipbridge.admin import keys, permissions
from sipbridge.tracker.heartbeat import Heartbeats

routes = web.RouteTableDef()


def folder(route: str) -> web.Response:
    """The listing of `route`'s children (the navigation tree)."""
    items = [
        {"id": r.route.rsplit("/", 1)[1], "description": r.description, "url": r.route}
        for r in permissions.children(route)
    ]
    return web.json_response({"items": items})


@routes.get("/api")
async def versions(_: web.Request) -> web.Response:
    return web.json_response({"versions": [{"id": "v1", "status": "stable", "url": "/api/v1"}]})


@routes.get("/api/v1")
async def navigation(_: web.Request) -> web.Response:
    return folder("/api/v1")


def local_timestamp(at: float) -> str:
    """RFC 3339 with the local offset, as the manual's localTimeStamp."""
    return datetime.datetime.fromtimestamp(at).astimezone().isoformat(timespec="milliseconds")


@routes.get("/api/v1/status")
async def status(request: web.Request) -> web.Response:
    """Manual 004 section 10's fields that mean something for a service (no subnet, gateway,
    serial number, MAC or HA: docs/device-api.md), then sipbridge's own."""
    settings = request.app[keys.SETTINGS]
    store = request.app[keys.STORE]
    now = time.time()
    phones, calls = store.counts()
    beats = Heartbeats(store).alive(now=now)
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    listener = next((b.listener for b in beats if b.listener), None)
    # The service is up since worker 0 started (a restarted worker does not reset it).
    started = next((b.started_at for b in beats if b.index == 0), request.app[keys.STARTED_AT])
    body = {
        "localTimeStamp": local_timestamp(now),
        "ipAddress": sockname[0] if sockname else settings.http_host,
        "productType": "sipbridge",
        "versionID": sipbridge.__version__,
        "operationalState": "UNLOCKED",
        "systemUpTime": int(now - started),
        "phonesRegistered": phones,
        "callsTracked": calls,
        "commandsInFlight": sum(b.in_flight for b in beats),
        "workers": settings.workers,
        "workersAlive": len(beats),
        "sipListener": listener,
        "sipUserAgents": [b.user_agent for b in beats if b.user_agent],
    }
    return web.json_response(body)
