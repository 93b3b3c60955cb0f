"""The OpenAPI 3.1 document of the front API, generated from the pydantic models it uses."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from sipbridge import __version__
from sipbridge.admin import openapi as device_openapi
from sipbridge.api import schemas, webhooks
from sipbridge.api.problems import PROBLEM_CONTENT_TYPE
from sipbridge.catalog import CALL_ID_PATTERN
from sipbridge.commands.actions import (
    CALL_ACTIONS,
    DialBody,
    DtmfBody,
    TransferBody,
    WarmTransferBody,
)
from sipbridge.tracker.models import PHONE_ID_PATTERN

_REF = "#/components/schemas/{model}"
_MODELS: tuple[type[BaseModel], ...] = (
    schemas.CommandLogPage,
    schemas.PhoneIn,
    schemas.PhoneOut,
    schemas.PhoneList,
    schemas.CallIn,
    schemas.CallOut,
    schemas.CallList,
    schemas.PhoneBatchIn,
    schemas.CallBatchIn,
    schemas.BatchOut,
    schemas.CommandIn,
    schemas.CommandResultOut,
    schemas.DryRunOut,
    schemas.EventOut,
    schemas.Problem,
    schemas.CatalogOut,
    schemas.ProfileList,
    TransferBody,
    WarmTransferBody,
    DtmfBody,
    DialBody,
)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json_body(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(model)}}}


def _ok(model: type[BaseModel], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _problems(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Malformed JSON",
        401: "No or unknown API key",
        404: "Unknown phone, call or action",
        413: "Body over the limit (commands: 20 KB)",
        415: "Body is not application/json",
        422: "A field is missing or invalid, the phone's profile lacks the command, or the "
        "transport cannot carry it; `errors` names the field, `detail` says why",
        403: "The key's level is below Administrator",
        409: "The tracked call is not in a state the action makes sense in (`state` says "
        "which; ?force=true sends anyway), or the first request with this Idempotency-Key "
        "has not been answered",
        410: "The resume point is older than the event log keeps; `oldest` says where to start",
        429: "The phone's queue is full; see Retry-After",
        502: "The phone refused the command (SIP status, or HTTP status and Poly code with its "
        "meaning) or could not be reached",
        503: "The tracker database is unavailable, or the phone is busy with another client's "
        "request (Poly 4001; see Retry-After)",
        504: "No final answer from the phone by the deadline; `sent` says whether the command "
        "left (true: the phone may have carried it out, its late answer is recorded in the "
        "command log and applied to the call) or never left the queue (false)",
    }
    problem = {PROBLEM_CONTENT_TYPE: {"schema": _ref(schemas.Problem)}}
    return {str(s): {"description": text[s], "content": problem} for s in statuses}


_COMMAND_ERRORS = (400, 401, 403, 404, 409, 413, 415, 422, 429, 502, 503, 504)
_TRANSPORT = {
    "name": "transport",
    "in": "query",
    "required": False,
    "description": "auto (default): SIP for call control where the phone's profile allows it, "
    "HTTP for queries that return data and for phones without REST over SIP; or force sip / http.",
    "schema": {"type": "string", "enum": ["auto", "sip", "http"], "default": "auto"},
}
_DRY_RUN = {
    "name": "dry_run",
    "in": "query",
    "required": False,
    "description": "true: validate, locate and plan; answer what would be sent (DryRunOut); "
    "nothing is sent or recorded.",
    "schema": {"type": "boolean", "default": False},
}
_FORCE = {
    "name": "force",
    "in": "query",
    "required": False,
    "description": "true: send even when the tracked call is in the wrong state (no 409).",
    "schema": {"type": "boolean", "default": False},
}
_CLIENT_STATE = {
    "name": "Client-State",
    "in": "header",
    "required": False,
    "description": "Your own string (1-256 printable ASCII), echoed on every event the "
    "command causes.",
    "schema": {"type": "string", "pattern": "^[ -~]{1,256}$"},
}
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Your key for this request (1-255 visible ASCII): a retry with the same key "
    "and request within 24 h gets the first answer again (Idempotent-Replayed: true) and sends "
    "nothing; the same key with another request is 422.",
    "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
}
_PREFER = {
    "name": "Prefer",
    "in": "header",
    "required": False,
    "description": "respond-async (RFC 7240): 202 at once with Location /v1/commands/{id}; the "
    "result is kept there. Refusals (4xx) are still answered at once.",
    "schema": {"type": "string"},
}
_COMMAND_PARAMS = [_TRANSPORT, _DRY_RUN, _CLIENT_STATE, _IDEMPOTENCY_KEY, _PREFER]
_ACCEPTED = {
    "description": "Accepted (Prefer: respond-async): {id, state, location}",
    "headers": {"Location": {"schema": {"type": "string"}}},
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["id", "state", "location"],
                "properties": {
                    "id": {"type": "integer"},
                    "state": {"type": "string", "enum": ["queued"]},
                    "location": {"type": "string"},
                },
            }
        }
    },
}


def _command_ok() -> dict[str, Any]:
    schema = {"oneOf": [_ref(schemas.CommandResultOut), _ref(schemas.DryRunOut)]}
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def _command_responses() -> dict[str, Any]:
    return {"200": _command_ok(), "202": _ACCEPTED, **_problems(*_COMMAND_ERRORS)}


_FEED_ERRORS = (400, 401, 404, 415, 422, 503)
_BATCH_ERRORS = (400, 401, 413, 415, 422, 503)


def _path_param(name: str, pattern: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": pattern},
    }


def build_openapi() -> dict[str, Any]:
    models = (*_MODELS, *webhooks.MODELS, *device_openapi.MODELS)
    _, definitions = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
    phone = _path_param("phone", PHONE_ID_PATTERN, "Phone id (e.g. the extension).")
    call = _path_param("call_id", CALL_ID_PATTERN, "SIP Call-ID, percent-encoded.")
    paths: dict[str, Any] = {
        "/v1/phones": {
            "get": {
                "summary": "List registered phones",
                "responses": {"200": _ok(schemas.PhoneList), **_problems(401, 503)},
            },
            "put": {
                "summary": "Register or refresh many phones (all or none; 422 names the item)",
                "requestBody": _json_body(schemas.PhoneBatchIn),
                "responses": {"200": _ok(schemas.BatchOut), **_problems(*_BATCH_ERRORS)},
            },
        },
        "/v1/phones/{phone}": {
            "parameters": [phone],
            "put": {
                "summary": "Register or refresh a phone",
                "requestBody": _json_body(schemas.PhoneIn),
                "responses": {"200": _ok(schemas.PhoneOut), **_problems(*_FEED_ERRORS)},
            },
            "get": {
                "summary": "A registered phone",
                "responses": {"200": _ok(schemas.PhoneOut), **_problems(401, 404, 422, 503)},
            },
            "delete": {
                "summary": "Forget a phone and its calls",
                "responses": {"204": {"description": "Removed"}, **_problems(401, 404, 422, 503)},
            },
        },
        "/v1/phones/{phone}/commands": {
            "parameters": [phone],
            "post": {
                "summary": "Send one catalog command to a phone",
                "parameters": _COMMAND_PARAMS,
                "requestBody": _json_body(schemas.CommandIn),
                "responses": _command_responses(),
            },
        },
        "/v1/phones/{phone}/dial": {
            "parameters": [phone],
            "post": {
                "summary": "Place a call from a phone",
                "parameters": _COMMAND_PARAMS,
                "requestBody": _json_body(DialBody),
                "responses": _command_responses(),
            },
        },
        "/v1/commands": {
            "get": {
                "summary": "The command log, newest first (HTTP and SIP-relayed commands)",
                "parameters": [
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
                    {"name": "before", "in": "query", "required": False,
                     "description": "next_before of the previous page",
                     "schema": {"type": "integer", "minimum": 1}},
                ],
                "responses": {"200": _ok(schemas.CommandLogPage), **_problems(401, 422, 503)},
            }
        },
        "/v1/calls": {
            "get": {
                "summary": "List tracked calls",
                "parameters": [
                    {
                        "name": "phone",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {"200": _ok(schemas.CallList), **_problems(401, 503)},
            },
            "put": {
                "summary": "Record many calls (all or none; 422 names the item)",
                "requestBody": _json_body(schemas.CallBatchIn),
                "responses": {"200": _ok(schemas.BatchOut), **_problems(*_BATCH_ERRORS)},
            },
        },
        "/v1/calls/{call_id}": {
            "parameters": [call],
            "put": {
                "summary": "Record which phone holds a call",
                "requestBody": _json_body(schemas.CallIn),
                "responses": {"200": _ok(schemas.CallOut), **_problems(*_FEED_ERRORS)},
            },
            "get": {
                "summary": "A tracked call",
                "responses": {"200": _ok(schemas.CallOut), **_problems(401, 404, 422, 503)},
            },
            "delete": {
                "summary": "Forget a call",
                "responses": {"204": {"description": "Removed"}, **_problems(401, 404, 422, 503)},
            },
        },
    }
    paths["/v1/catalog"] = {
        "get": {
            "summary": "Every Poly REST command: method, path, input and output, firmware lines, "
            "SIP-deliverable or HTTP-only",
            "responses": {"200": _ok(schemas.CatalogOut), **_problems(401)},
        }
    }
    paths["/v1/profiles"] = {
        "get": {
            "summary": "The loaded sip profiles: REST over SIP, HTTP auth, sessions, body limit",
            "responses": {"200": _ok(schemas.ProfileList), **_problems(401)},
        }
    }
    for action in CALL_ACTIONS.values():
        operation: dict[str, Any] = {
            "summary": action.summary,
            "description": f"Sends the Poly command `{action.command}` to the phone with the call.",
            "parameters": [*_COMMAND_PARAMS, *([_FORCE] if action.requires else [])],
            "responses": _command_responses(),
        }
        if action.body.model_fields:
            operation["requestBody"] = _json_body(action.body)
        paths[f"/v1/calls/{{call_id}}/{action.name}"] = {"parameters": [call], "post": operation}
    paths["/v1/commands/{id}"] = {
        "get": {
            "summary": "An asynchronous command: queued, then completed or failed",
            "description": "`result` is the body the synchronous request would have had, "
            "`http_status` its status.",
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **_problems(401, 404, 422),
            },
        }
    }
    paths["/v1/events"] = {
        "get": {
            "summary": "Events as Server-Sent Events, resumable with Last-Event-ID",
            "description": "Each message: `id:` the event id, `event:` its type, `data:` an "
            "EventOut. Heartbeat comments keep the stream open; a client that falls behind "
            "gets a final `cutoff` event with `resume_from`. docs/events.md.",
            "parameters": [
                {
                    "name": "types",
                    "in": "query",
                    "required": False,
                    "description": "Comma-separated event types (default all).",
                    "schema": {"type": "string"},
                },
                {"name": "phone", "in": "query", "required": False, "schema": {"type": "string"}},
                {
                    "name": "call_id",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                },
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "description": "Resume after this id (also ?last_event_id=).",
                    "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                },
            ],
            "responses": {
                "200": {
                    "description": "The stream",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                **_problems(401, 410, 422),
            },
        }
    }
    paths.update(webhooks.openapi_paths(_ref(schemas.Problem), _ref))
    paths.update(device_openapi.paths(_ref(schemas.Problem)))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sipbridge",
            "version": __version__,
            "description": "Control calls on Poly phones by SIP Call-ID.",
        },
        "components": {
            "schemas": definitions["$defs"],
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer"},
                **device_openapi.SECURITY_SCHEME,
            },
        },
        "security": [{"apiKey": []}],
        "paths": paths,
    }
