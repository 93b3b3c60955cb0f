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


def paths(problem_ref: dict[str, str]) -> dict[str, Any]:
    """Operations for the device-API routes this module knows the bodies of."""
    out: dict[str, Any] = {}
    for route, (model, summary) in _BODIES.items():
        resource = permissions.resource(route)
        assert resource is not None, route
        needed = resource.methods["GET"]
        responses: dict[str, Any] = {
            "200": {
                "description": "OK",
                "content": {
                    "application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}
                },
            },
            **{status: _problem(text, problem_ref) for status, text in _ERRORS.items()},
        }
        retry = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}}
        responses["429"]["headers"] = retry
        out[route] = {
            "get": {
                "operationId": "device_"
                + (route.removeprefix("/api").strip("/").replace("/", "_") or "versions"),
                "tags": ["device API"],
                "summary": summary,
                "description": f"Needs {needed.title}.",
                "security": [{"deviceUser": []}],
                "responses": responses,
            }
        }
    return out
