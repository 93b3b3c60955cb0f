"""The device API's resources and the level each method needs: manual 004's table 2-2, in one
place. The middleware (`admin/auth.py`) enforces it, the navigation listings (`admin/views.py`)
are built from it, and `docs/device-api.md` shows it as `render_markdown` writes it (a test keeps
the two equal; `python -m sipbridge.admin.permissions` prints it).

A method a resource lacks is 405 with `Allow` for every level; a method it has is 403 below the
level. Rows name the aiohttp route they guard (`route`), so a route without a row is a bug that
a test catches (tests/unit/admin/test_permissions.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from sipbridge.levels import Level

METHODS = ("GET", "PUT", "POST", "DELETE")

M, A, S = Level.MONITOR, Level.ADMINISTRATOR, Level.SECURITY_ADMINISTRATOR


@dataclass(frozen=True)
class Resource:
    """One resource: its route (aiohttp's canonical form), what it is, who may do what."""

    route: str
    description: str
    methods: Mapping[str, Level] = field(default_factory=dict)
    # Shown in its parent folder's listing (the navigation tree, manual 004 section 5).
    listed: bool = True

    @property
    def allow(self) -> str:
        return ", ".join(m for m in METHODS if m in self.methods)


RESOURCES: tuple[Resource, ...] = (
    # Manual 004 names the root's row "/api/v1/versions": here it is /api itself (section 4).
    Resource("/api", "API versions", {"GET": M}, listed=False),
    Resource("/api/v1", "sipbridge device API, version 1", {"GET": M}, listed=False),
    Resource("/api/v1/status", "Service status", {"GET": M}),
    Resource("/api/v1/alarms", "Alarms raised and cleared by sipbridge", {"GET": M}),
    Resource("/api/v1/alarms/active", "Active alarms", {"GET": M}),
    Resource(
        "/api/v1/alarms/active/lastChange",
        "When the active alarms last changed",
        {"GET": M},
        listed=False,
    ),
    Resource("/api/v1/alarms/active/{id}", "One active alarm", {"GET": M}, listed=False),
    Resource("/api/v1/alarms/history", "Alarm history (raised and cleared)", {"GET": M}),
    Resource("/api/v1/alarms/history/{id}", "One history alarm", {"GET": M}, listed=False),
    Resource("/api/v1/kpi", "Performance monitoring (KPIs)", {"GET": M}),
    Resource(
        "/api/v1/kpi/{tail}",
        "KPI tree: current, history, interval and below",
        {"GET": M},
        listed=False,
    ),
)

_BY_ROUTE = {resource.route: resource for resource in RESOURCES}


def _pattern(route: str) -> re.Pattern[str]:
    """A route template as a regex: `{id}` one segment, `{tail}` the rest of the path."""
    parts = re.split(r"(\{\w+\})", route)
    regex = "".join(
        ("(.+)" if part == "{tail}" else "([^/]+)") if part.startswith("{") else re.escape(part)
        for part in parts
    )
    return re.compile(regex + "$")


_PATTERNS = [(_pattern(r.route), r) for r in RESOURCES if "{" in r.route]


def resource(route: str) -> Resource | None:
    """The row of a route (aiohttp's canonical form)."""
    return _BY_ROUTE.get(route)


def resource_at(path: str) -> Resource | None:
    """The row whose route a request path falls under (fixed routes first, as aiohttp)."""
    found = _BY_ROUTE.get(path)
    if found is not None:
        return found
    return next((r for pattern, r in _PATTERNS if pattern.match(path)), None)


def children(route: str) -> list[Resource]:
    """The listed resources one segment below `route`, in table order."""
    prefix = route.rstrip("/") + "/"
    return [
        r
        for r in RESOURCES
        if r.listed and r.route.startswith(prefix) and "/" not in r.route[len(prefix) :]
    ]


def render_markdown() -> str:
    """The table as docs/device-api.md shows it."""
    lines = [
        "| resource | " + " | ".join(METHODS) + " |",
        "|---|" + "---|" * len(METHODS),
    ]
    for r in RESOURCES:
        cells = [r.methods[m].title if m in r.methods else "405" for m in METHODS]
        lines.append(f"| `{r.route}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
