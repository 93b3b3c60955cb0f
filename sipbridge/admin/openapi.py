"""The device API's part of the OpenAPI document: its paths, models and security (HTTP Basic),
with the statuses the permission table implies (401, 403, 405, 429, 503)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from sipbridge.admin import permissions, schemas

_REF = "#/components/schemas/{model}"

MODELS: tuple[type[BaseModel], ...] = (schemas.VersionsOut, schemas.FolderOut, schemas.StatusOut)
SECURITY_SCHEME = {
    "deviceUser": {
        "type": "http",
        "scheme": "basic",
        "description": "A device-API user (sipbridge users add); manual 004 section 3.",
    }
}

# What each documented route answers with 200 (the rest: added by the modules that serve them).
_BODIES: dict[str, tuple[type[BaseModel], str]] = {
    "/api": (schemas.VersionsOut, "The API versions (manual 004 section 4)."),
    "/api/v1": (schemas.FolderOut, "The navigation tree's top (manual 004 section 5)."),
    "/api/v1/status": (schemas.StatusOut, "Service status (manual 004 section 10)."),
    "/api/v1/alarms": (schemas.FolderOut, "The alarm folders: active, history."),
    "/api/v1/kpi": (schemas.FolderOut, "The KPI folders: current, history, interval."),
}

_ERRORS = {
    "401": "No or wrong user name or password (WWW-Authenticate: Basic)",
    "403": "The user's level is below the one this needs (table in docs/device-api.md)",
    "429": "Too many failed authentications from this address; see Retry-After",
    "503": "No device-API user exists yet: the detail says how to create one",
}


def _problem(description: str, problem_ref: dict[str, str]) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": problem_ref}},
    }


_DESCRIBED_ELSEWHERE = {
    "/api/v1/alarms/active": "Active alarms, a page at a time (limit, after, before).",
    "/api/v1/alarms/active/lastChange": "When the active alarms last changed.",
    "/api/v1/alarms/active/{id}": "One active alarm.",
    "/api/v1/alarms/history": "Alarm history, raised and cleared, a page at a time.",
    "/api/v1/alarms/history/{id}": "One history alarm.",
    "/api/v1/kpi/{tail}": "The KPI tree below /kpi: current, history, interval (docs).",
}
_PARAMS = {
    "id": {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
    "tail": {"name": "tail", "in": "path", "required": True, "schema": {"type": "string"}},
}
_PAGE_PARAMS = [
    {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
    for name in ("limit", "after", "before")
]


def paths(problem_ref: dict[str, str]) -> dict[str, Any]:
    """An operation for every GET the permission table lists."""
    out: dict[str, Any] = {}
    for resource in permissions.RESOURCES:
        route = resource.route
        needed = resource.methods["GET"]
        problems = {status: _problem(text, problem_ref) for status, text in _ERRORS.items()}
        retry = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
        problems["429"]["headers"] = retry
        parameters: list[dict[str, Any]] = [
            _PARAMS[name] for name in ("id", "tail") if "{" + name + "}" in route
        ]
        if route in _BODIES:
            model, summary = _BODIES[route]
            ok: dict[str, Any] = {"$ref": _REF.format(model=model.__name__)}
            responses: dict[str, Any] = {
                "200": {"description": "OK", "content": {"application/json": {"schema": ok}}},
                **problems,
            }
        else:
            summary = _DESCRIBED_ELSEWHERE[route]
            if route.endswith(("/active", "/history")):
                parameters += _PAGE_PARAMS
            responses = {
                "200": {
                    "description": "OK (docs/device-api-alarms.md, docs/device-api-kpi.md)",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "204": {"description": "Nothing there (an empty page or folder)"},
                "404": _problem("No such alarm, KPI node or change yet", problem_ref),
                "422": _problem("A parameter breaks its rule; `errors` names it", problem_ref),
                **problems,
            }
        operation: dict[str, Any] = {
            "operationId": "device_"
            + (
                route.removeprefix("/api")
                .strip("/")
                .replace("/", "_")
                .replace("{", "")
                .replace("}", "")
                or "versions"
            ),
            "tags": ["device API"],
            "summary": summary,
            "description": f"Needs {needed.title}.",
            "security": [{"deviceUser": []}],
            "responses": responses,
        }
        if parameters:
            operation["parameters"] = parameters
        out[route] = {"get": operation}
    return out
