"""The permission table is the one source: every device-API route has its row (with the same
methods), docs/device-api.md shows it as rendered, and request paths find their rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipbridge.admin import permissions
from sipbridge.api import create_app
from sipbridge.config import Settings
from sipbridge.levels import Level
from sipbridge.sip.sender import FakeSender

DOCS = Path(__file__).parents[3] / "docs" / "device-api.md"


def _device_routes(tmp_path) -> dict[str, set[str]]:
    app = create_app(Settings(data_dir=tmp_path, api_keys=("k" * 16,)), sender_factory=lambda _: FakeSender())
    found: dict[str, set[str]] = {}
    for route in app.router.routes():
        canonical = route.resource.canonical if route.resource else ""
        if canonical == "/api" or canonical.startswith("/api/"):
            found.setdefault(canonical, set()).add(route.method)
    return found


def test_every_device_route_has_its_row_with_the_same_methods(tmp_path):
    routes = _device_routes(tmp_path)
    rows = {r.route: set(r.methods) for r in permissions.RESOURCES}
    for route, methods in routes.items():
        assert route in rows, f"{route} has no row in admin/permissions.py"
        assert methods - {"HEAD"} == rows[route], route
    missing = set(rows) - set(routes)
    assert not missing, f"rows without a route: {sorted(missing)}"


def test_the_docs_show_the_table_as_rendered():
    assert permissions.render_markdown() in DOCS.read_text()


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/api/v1/status", "/api/v1/status"),
        ("/api/v1/alarms/active/7", "/api/v1/alarms/active/{id}"),
        ("/api/v1/alarms/active/lastChange", "/api/v1/alarms/active/lastChange"),
        ("/api/v1/kpi/current/sipbridge/commands/global", "/api/v1/kpi/{tail}"),
        ("/api/v1/nothing", None),
        ("/api/v1/alarms/active/7/more", None),
    ],
)
def test_paths_find_their_rows(path, route):
    found = permissions.resource_at(path)
    assert (found.route if found else None) == route


def test_children_are_the_listed_rows_one_level_down():
    assert [r.route for r in permissions.children("/api/v1")] == [
        "/api/v1/status",
        "/api/v1/alarms",
        "/api/v1/kpi",
    ]
    assert [r.route for r in permissions.children("/api/v1/alarms")] == [
        "/api/v1/alarms/active",
        "/api/v1/alarms/history",
    ]


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("monitor", Level.MONITOR),
        ("Administrator", Level.ADMINISTRATOR),
        ("Security Administrator", Level.SECURITY_ADMINISTRATOR),
        ("security-administrator", Level.SECURITY_ADMINISTRATOR),
    ],
)
def test_levels_parse_and_order(text, level):
    assert Level.parse(text) is level
    assert Level.MONITOR < Level.ADMINISTRATOR < Level.SECURITY_ADMINISTRATOR


def test_an_unknown_level_names_the_choices():
    with pytest.raises(ValueError, match="monitor, administrator, security-administrator"):
        Level.parse("root")


def test_the_openapi_describes_every_device_resource():
    from sipbridge.api.openapi import build_openapi

    paths = build_openapi()["paths"]
    for resource in permissions.RESOURCES:
        operation = paths[resource.route]["get"]
        assert operation["security"] == [{"deviceUser": []}], resource.route
        assert {"401", "403", "429", "503"} <= set(operation["responses"]), resource.route
