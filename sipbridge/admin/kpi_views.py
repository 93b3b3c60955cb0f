"""The KPI tree of manual 004 section 11 (docs/device-api-kpi.md):

    /api/v1/kpi/current|history/<application>/<group>/global[/<pm>]
    /api/v1/kpi/current|history/<application>/<group>/<element>[/<id>[/<pm>]]
    /api/v1/kpi/interval

"current" is the interval under way, summed over workers (this worker's values live, the
others' as last flushed); "history" a finished interval (`?interval=n|last`, default last).
Listings page with `limit`, `after`, `before` and answer a cursor (section 11.2); an empty
listing is 204, an unknown node 404, a bad parameter 422.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from sipbridge.admin import kpi
from sipbridge.admin.auth import metrics_level
from sipbridge.admin.keys import KPI_LOG, KPI_RECORDER, METRICS
from sipbridge.admin.metrics import CONTENT_TYPE
from sipbridge.admin.views import local_timestamp
from sipbridge.errors import InvalidInput, NotFound
from sipbridge.tracker.kpi_log import KpiInterval

routes = web.RouteTableDef()

ROOT = "/api/v1/kpi"
MAX_LIMIT = 10_000

_LISTING = {"limit", "after", "before", "detailed"}


@routes.get(ROOT)
async def kpi_root(_: web.Request) -> web.Response:
    items = [
        {
            "id": "current",
            "description": "KPIs of the interval under way",
            "url": f"{ROOT}/current",
        },
        {"id": "history", "description": "KPIs of finished intervals", "url": f"{ROOT}/history"},
        {"id": "interval", "description": "The finished intervals", "url": f"{ROOT}/interval"},
    ]
    return web.json_response({"items": items})


@routes.get(ROOT + "/{tail:.+}")
async def kpi_tree(request: web.Request) -> web.StreamResponse:
    segments = request.match_info["tail"].split("/")
    query = request.query
    if segments == ["interval"]:
        _only(query, {"id", "limit", "after", "before"})
        return _intervals(request)
    scope, *path = segments
    if scope not in ("current", "history") or "" in path:
        raise NotFound(f"no KPI node {request.path}")
    allowed = set(_LISTING)
    if scope == "history":
        allowed.add("interval")
    base = f"{ROOT}/{scope}"
    if not path:
        _only(query, allowed)
        return _listing(query, [_application_item(base)])
    if path[0] != kpi.APPLICATION:
        raise NotFound(f"no KPI application {path[0]!r}: there is one, {kpi.APPLICATION!r}")
    base += f"/{kpi.APPLICATION}"
    if len(path) == 1:
        _only(query, allowed)
        return _listing(query, [_group_item(base, g) for g in kpi.GROUPS])
    group = kpi.group(path[1])
    if group is None:
        raise NotFound(f"no KPI group {path[1]!r} in {kpi.APPLICATION}")
    base += f"/{group.id}"
    if len(path) == 2:
        _only(query, allowed)
        return _listing(query, _element_items(base, group))
    element = path[2]
    if element != "global" and group.element(element) is None:
        raise NotFound(f"no KPI element {element!r} in group {group.id}")
    interval, values = _values(request, scope)
    base += f"/{element}"
    rest = path[3:]
    if query.get("interval") == "all" and len(rest) != (1 if element == "global" else 2):
        raise InvalidInput.one("interval", "all is for one KPI; a listing takes n or last")
    if element == "global":
        entity = None
    else:
        if not rest:
            _only(query, allowed | {"id"})
            return _entity_listing(query, base, kpi.entity_ids(values, group.id, element))
        entity, *rest = rest
        base += f"/{entity}"
        if entity not in kpi.entity_ids(values, group.id, element):
            raise NotFound(f"no {element} {entity!r} in {group.id} in this interval")
    pms = kpi.entity_values(values, group.id, element, entity)
    catalogue = {p.id: p for p in (group.global_pms if entity is None else _pms(group, element))}
    if not rest:
        _only(query, allowed | {"kpi"})
        return _pm_listing(query, base, pms, catalogue, interval)
    if len(rest) > 1 or rest[0] not in pms:
        raise NotFound(f"no KPI {'/'.join(rest)!r} under {base}")
    _only(query, {"detailed"} | ({"interval"} if scope == "history" else set()))
    pm = catalogue[rest[0]]
    if scope == "history" and query.get("interval") == "all":
        return _pm_series(request, group.id, element, entity, pm)
    body = _pm_item(base, pm, pms[pm.id], _detailed(query))
    if interval is not None:
        body["interval"] = interval.id
    return web.json_response(body)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition (admin/metrics.py); who may read it: `metrics_level`."""
    await metrics_level(request)
    body = await asyncio.get_running_loop().run_in_executor(None, request.app[METRICS].render)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


# -- query parameters -------------------------------------------------------------------------


def _only(query: Mapping[str, str], allowed: set[str]) -> None:
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise InvalidInput.one(
            unknown[0], f"not a parameter here; this resource takes: {', '.join(sorted(allowed))}"
        )


def _detailed(query: Mapping[str, str]) -> bool:
    value = query.get("detailed", "true")
    if value not in ("true", "false"):
        raise InvalidInput.one("detailed", "true or false")
    return value == "true"


def _number(query: Mapping[str, str], key: str, *, low: int = 0) -> int | None:
    value = query.get(key)
    if value is None:
        return None
    if not value.isdigit() or int(value) < low or int(value) > 10**12:
        raise InvalidInput.one(key, f"a whole number from {low}, not {value!r}")
    return int(value)


def _limit(query: Mapping[str, str]) -> int | None:
    limit = _number(query, "limit", low=1)
    return None if limit is None else min(limit, MAX_LIMIT)


# -- values -----------------------------------------------------------------------------------


def _finished(request: web.Request) -> list[KpiInterval]:
    """The finished intervals kept, oldest first."""
    recorder = request.app[KPI_RECORDER]
    current = recorder.interval.id
    now = time.time()
    return [i for i in request.app[KPI_LOG].intervals() if i.id != current and i.end <= now]


def _values(request: web.Request, scope: str) -> tuple[KpiInterval | None, dict[str, float]]:
    """The interval asked for (None: current) and its values summed over workers."""
    recorder = request.app[KPI_RECORDER]
    if scope == "current":
        values = request.app[KPI_LOG].totals(recorder.interval.id, except_worker=recorder.worker)
        for name, value in recorder.values().items():
            values[name] = values.get(name, 0.0) + value
        return None, values
    wanted = request.query.get("interval", "last")
    finished = _finished(request)
    if wanted in ("all", "last"):  # all: the caller reads every interval itself
        interval = finished[-1] if finished else None
    else:
        number = _number(request.query, "interval")
        interval = next((i for i in finished if i.id == number), None)
        if interval is None:
            raise NotFound(f"no finished KPI interval {number} is kept (see {ROOT}/interval)")
    if interval is None:
        raise web.HTTPNoContent()  # nothing to show (manual 004 11.3-11.7)
    return interval, request.app[KPI_LOG].totals(interval.id)


# -- bodies -----------------------------------------------------------------------------------


def _listing(query: Mapping[str, str], items: Sequence[dict[str, Any]]) -> web.Response:
    """Items paged by their ids (manual 11.2); 204 when there are none."""
    _detailed(query)
    by_id = {item["id"]: item for item in items}
    chosen = kpi.page(
        list(by_id), after=query.get("after"), before=query.get("before"), limit=_limit(query)
    )
    if not items:
        raise web.HTTPNoContent()  # nothing to show (manual 004 11.3-11.7)
    return web.json_response({"items": [by_id[i] for i in chosen.items], "cursor": [chosen.cursor]})


def _application_item(base: str) -> dict[str, Any]:
    return {
        "id": kpi.APPLICATION,
        "description": kpi.APPLICATION_DESCRIPTION,
        "url": f"{base}/{kpi.APPLICATION}",
        "groups": [g.id for g in kpi.GROUPS],
    }


def _group_item(base: str, group: kpi.Group) -> dict[str, Any]:
    return {"id": group.id, "description": group.description, "url": f"{base}/{group.id}"}


def _element_items(base: str, group: kpi.Group) -> list[dict[str, Any]]:
    items = [
        {"id": "global", "description": f"{group.description}: in total", "url": f"{base}/global"}
    ]
    items += [
        {"id": e.id, "description": e.description, "url": f"{base}/{e.id}"} for e in group.elements
    ]
    return items


def _entity_listing(query: Mapping[str, str], base: str, ids: list[str]) -> web.Response:
    wanted = query.get("id")
    if wanted is not None:
        if wanted not in ids:
            raise NotFound(f"no {wanted!r} under {base} in this interval")
        ids = [wanted]
    return _listing(query, [{"id": i, "url": f"{base}/{i}"} for i in ids])


def _pms(group: kpi.Group, element: str) -> tuple[kpi.Pm, ...]:
    found = group.element(element)
    assert found is not None  # checked by the caller
    return found.pms


def _pm_item(base: str, pm: kpi.Pm, value: float | None, detailed: bool) -> dict[str, Any]:
    if not detailed:
        return {"id": pm.id, "value": kpi.clean(value)}
    return {
        "id": pm.id,
        "name": pm.name,
        "description": pm.description,
        "unit": pm.unit,
        "url": f"{base}/{pm.id}",
        "value": kpi.clean(value),
    }


def _pm_listing(
    query: Mapping[str, str],
    base: str,
    values: Mapping[str, float | None],
    catalogue: Mapping[str, kpi.Pm],
    interval: KpiInterval | None,
) -> web.Response:
    detailed = _detailed(query)
    ids = list(values)
    wanted = query.get("kpi")
    if wanted is not None:
        if wanted not in values:
            raise NotFound(f"no KPI {wanted!r} under {base}")
        ids = [wanted]
    chosen = kpi.page(
        ids, after=query.get("after"), before=query.get("before"), limit=_limit(query)
    )
    body: dict[str, Any] = {
        "items": [_pm_item(base, catalogue[i], values[i], detailed) for i in chosen.items],
        "cursor": [chosen.cursor],
    }
    if interval is not None:
        body["interval"] = interval.id
    return web.json_response(body)


def _pm_series(
    request: web.Request, group_id: str, element: str, entity: str | None, pm: kpi.Pm
) -> web.Response:
    """One pm in every finished interval kept, newest first (manual 11.7, `interval=all`)."""
    log = request.app[KPI_LOG]
    items = []
    for interval in reversed(_finished(request)):
        values = log.totals(interval.id)
        value = kpi.entity_values(values, group_id, element, entity)[pm.id]
        items.append({"interval": interval.id, "value": kpi.clean(value)})
    return web.json_response({"id": pm.id, "items": items})


def _intervals(request: web.Request) -> web.StreamResponse:
    """Manual 11.3: the finished intervals, oldest first; `id=n|last`, `after=n` (newer than
    n), `before=n` (older than n), `limit` (the newest `limit`, or the first `limit` after n)."""
    query = request.query
    finished = _finished(request)
    if not finished:
        raise web.HTTPNoContent()  # nothing to show (manual 004 11.3-11.7)
    wanted = query.get("id")
    if wanted is not None:
        if len(query) > 1:
            raise InvalidInput.one("id", "id takes no other parameter")
        if wanted == "last":
            chosen = [finished[-1]]
        else:
            number = _number(query, "id")
            chosen = [i for i in finished if i.id == number]
            if not chosen:
                raise NotFound(f"no finished KPI interval {number} is kept")
        first, last = finished.index(chosen[0]), finished.index(chosen[0]) + 1
    else:
        after, before, limit = _number(query, "after"), _number(query, "before"), _limit(query)
        if after is not None and before is not None:
            raise InvalidInput.one("after", "give after or before, not both")
        size = limit if limit is not None else len(finished)
        if after is not None:
            first = next((n for n, i in enumerate(finished) if i.id > after), len(finished))
            last = min(len(finished), first + size)
        else:
            last = (
                next((n for n, i in enumerate(finished) if i.id >= before), len(finished))
                if before is not None
                else len(finished)
            )
            first = max(0, last - size)
        chosen = finished[first:last]
    if not chosen:
        raise web.HTTPNoContent()  # nothing to show (manual 004 11.3-11.7)
    cursor = {
        "start": str(finished[0].id),
        "before": str(chosen[0].id) if first > 0 else "-1",
        "after": str(chosen[-1].id) if last < len(finished) else "-1",
        "end": str(finished[-1].id),
    }
    return web.json_response(
        {
            "intervals": [
                {
                    "id": i.id,
                    "start": local_timestamp(i.start),
                    "end": local_timestamp(i.end),
                    "url": f"{ROOT}/interval?id={i.id}",
                }
                for i in chosen
            ],
            "cursor": [cursor],
        }
    )
