"""The device API's alarms (manual 004 section 9): the folder, the active and history lists
with the manual's cursors, one alarm, and when the active table last changed.

Where the manual contradicts itself (docs/device-api-alarms.md): the folder lists "items" like
every folder here; history items point at /alarms/history/N (the manual's example points them
at /alarms/active/N); severities are lower case; `date` is RFC 3339 in local time like
lastChange; `oid` is ignored (sipbridge sends no SNMP traps).
"""

from __future__ import annotations

from aiohttp import web

from sipbridge.admin import keys
from sipbridge.admin.views import folder, local_timestamp
from sipbridge.errors import InvalidInput, NotFound
from sipbridge.tracker.alarm_log import AlarmRecord, PageQuery, Table

routes = web.RouteTableDef()

DEFAULT_LIMIT = 20
MAX_LIMIT = 1_000
NO_MORE = "-1"


def page_query(query: dict[str, str]) -> PageQuery | None:
    """The list parameters; None when a cursor says there is nothing that way ("-1")."""
    limit = _integer(query, "limit", DEFAULT_LIMIT)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput.one("limit", f"limit must be 1 to {MAX_LIMIT}")
    if "after" in query and "before" in query:
        raise InvalidInput.one("before", "give either after or before, not both")
    after = _cursor(query, "after")
    before = _cursor(query, "before")
    if after == -1 or before == -1:
        return None
    return PageQuery(limit=limit, after=after, before=before)


def _integer(query: dict[str, str], name: str, default: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not text.lstrip("-").isdigit() or len(text) > 19:
        raise InvalidInput.one(name, f"{name} must be an integer, not {text[:40]!r}")
    return int(text)


def _cursor(query: dict[str, str], name: str) -> int | None:
    if name not in query:
        return None
    value = _integer(query, name, 0)
    if value < -1:
        raise InvalidInput.one(name, f"{name} is a cursor from a previous page (or -1)")
    return value


def _url(table: Table, record: AlarmRecord) -> str:
    return f"/api/v1/alarms/{table}/{record.id}"


def _listing(request: web.Request, table: Table) -> web.Response:
    query = page_query(dict(request.query))
    if query is None:
        return web.Response(status=204)
    page = request.app[keys.ALARM_LOG].page(table, query)
    if not page.records:
        return web.Response(status=204)
    alarms = [
        {"id": str(r.id), "description": r.description, "url": _url(table, r)} for r in page.records
    ]
    cursor = {
        "after": NO_MORE if page.after is None else str(page.after),
        "before": NO_MORE if page.before is None else str(page.before),
    }
    return web.json_response({"alarms": alarms, "cursor": cursor})


def _one(request: web.Request, table: Table) -> web.Response:
    record = request.app[keys.ALARM_LOG].get(table, int(request.match_info["id"]))
    return web.json_response(
        {
            "id": str(record.id),
            "description": record.description,
            "severity": record.severity,
            "source": record.source,
            "date": local_timestamp(record.at),
            "url": _url(table, record),
        }
    )


@routes.get("/api/v1/alarms")
async def alarms(_: web.Request) -> web.Response:
    return folder("/api/v1/alarms")


@routes.get("/api/v1/alarms/active")
async def active(request: web.Request) -> web.Response:
    return _listing(request, "active")


@routes.get("/api/v1/alarms/history")
async def history(request: web.Request) -> web.Response:
    return _listing(request, "history")


# Before /active/{id}: aiohttp tries routes in the order they were added.
@routes.get("/api/v1/alarms/active/lastChange")
async def last_change(request: web.Request) -> web.Response:
    at = request.app[keys.ALARM_LOG].last_change()
    if at is None:
        raise NotFound("no alarm was ever raised")
    return web.json_response({"lastChange": local_timestamp(at)})


@routes.get(r"/api/v1/alarms/active/{id:\d{1,18}}")
async def active_alarm(request: web.Request) -> web.Response:
    return _one(request, "active")


@routes.get(r"/api/v1/alarms/history/{id:\d{1,18}}")
async def history_alarm(request: web.Request) -> web.Response:
    return _one(request, "history")
