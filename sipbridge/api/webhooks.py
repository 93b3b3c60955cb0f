"""The webhook routes (/v1/webhooks): subscribe, list, delete, ping, delivery log, redeliver.

The secret is shown once, in the answer to the POST; later reads never include it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from sipbridge.api import keys
from sipbridge.api.views import read_model
from sipbridge.api.webhook_delivery import check_target
from sipbridge.errors import InvalidInput
from sipbridge.sip.access import parse_networks
from sipbridge.tracker.event_log import EVENT_TYPES
from sipbridge.tracker.models import PHONE_ID_PATTERN
from sipbridge.tracker.webhook_store import Webhook, WebhookStore

routes = web.RouteTableDef()

_WEBHOOK_ID = re.compile(r"^wh_[0-9a-f]{16}$")


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048)
    types: list[str] = Field(default_factory=list, max_length=len(EVENT_TYPES))
    phone: str | None = Field(default=None, pattern=PHONE_ID_PATTERN)


class WebhookOut(BaseModel):
    id: str
    url: str
    types: list[str]
    phone: str | None
    created_at: float


class WebhookCreated(WebhookOut):
    secret: str = Field(description="whsec_ and base64: shown in this answer only")


class WebhookList(BaseModel):
    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: int
    webhook_id: str
    message_id: str = Field(description="the webhook-id header, the same on every retry")
    event_id: int | None
    state: str = Field(description="pending, delivered or dead")
    tries: int
    next_at: float | None
    created_at: float
    last_at: float | None
    last_status: int | None
    last_error: str | None
    latency_ms: float | None


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]


MODELS: tuple[type[BaseModel], ...] = (
    WebhookIn,
    WebhookOut,
    WebhookCreated,
    WebhookList,
    DeliveryOut,
    DeliveryList,
)


def openapi_paths(problem_ref: dict[str, str], ref: Callable[[type[BaseModel]], Any]) -> Any:
    """The webhook operations of the OpenAPI document (api/openapi.py adds them)."""

    def ok(model: type[BaseModel], status: str = "200") -> dict[str, Any]:
        return {
            status: {"description": "OK", "content": {"application/json": {"schema": ref(model)}}}
        }

    def problems(*statuses: int) -> dict[str, Any]:
        content = {"application/problem+json": {"schema": problem_ref}}
        text = {
            400: "Malformed JSON",
            401: "No or unknown API key",
            403: "The key's level is too low (writes need Administrator)",
            404: "No such webhook or delivery",
            415: "Body is not application/json",
            422: "A field is invalid; a URL outside webhook_allow or not http/https names `url`",
            503: "The tracker database is unavailable",
        }
        return {str(s): {"description": text[s], "content": content} for s in statuses}

    hook = {
        "name": "webhook_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": _WEBHOOK_ID.pattern},
    }
    delivery = {
        "name": "delivery_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    }
    tags = ["webhooks"]
    reads = problems(401, 403, 404, 422, 503)
    return {
        "/v1/webhooks": {
            "post": {
                "operationId": "createWebhook",
                "tags": tags,
                "summary": "Subscribe a URL to events; the secret is in this answer only",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref(WebhookIn)}},
                },
                "responses": {
                    **ok(WebhookCreated, "201"),
                    **problems(400, 401, 403, 415, 422, 503),
                },
            },
            "get": {
                "operationId": "listWebhooks",
                "tags": tags,
                "summary": "The webhooks (without their secrets)",
                "responses": {**ok(WebhookList), **problems(401, 403, 503)},
            },
        },
        "/v1/webhooks/{webhook_id}": {
            "parameters": [hook],
            "get": {
                "operationId": "getWebhook",
                "tags": tags,
                "summary": "One webhook",
                "responses": {**ok(WebhookOut), **reads},
            },
            "delete": {
                "operationId": "deleteWebhook",
                "tags": tags,
                "summary": "Remove a webhook and its pending deliveries",
                "responses": {"204": {"description": "Removed"}, **reads},
            },
        },
        "/v1/webhooks/{webhook_id}/ping": {
            "parameters": [hook],
            "post": {
                "operationId": "pingWebhook",
                "tags": tags,
                "summary": "Queue a webhook.ping message to the URL",
                "responses": {**ok(DeliveryOut, "202"), **reads},
            },
        },
        "/v1/webhooks/{webhook_id}/deliveries": {
            "parameters": [hook],
            "get": {
                "operationId": "listWebhookDeliveries",
                "tags": tags,
                "summary": "The newest 100 deliveries: state, tries, last status, latency",
                "responses": {**ok(DeliveryList), **reads},
            },
        },
        "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver": {
            "parameters": [hook, delivery],
            "post": {
                "operationId": "redeliverWebhookDelivery",
                "tags": tags,
                "summary": "Send a delivery again (same webhook-id, fresh tries)",
                "responses": {**ok(DeliveryOut, "202"), **reads},
            },
        },
    }


def _out(hook: Webhook, *, with_secret: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": hook.id,
        "url": hook.url,
        "types": list(hook.types),
        "phone": hook.phone,
        "created_at": hook.created_at,
    }
    if with_secret:
        out["secret"] = hook.secret
    return out


def _store(request: web.Request) -> WebhookStore:
    return WebhookStore(request.app[keys.STORE])


def _webhook_id(request: web.Request) -> str:
    webhook_id = request.match_info["webhook_id"]
    if not _WEBHOOK_ID.fullmatch(webhook_id):
        raise InvalidInput.one("webhook_id", "not a webhook id (wh_ and 16 hex digits)")
    return webhook_id


@routes.post("/v1/webhooks")
async def create_webhook(request: web.Request) -> web.Response:
    body = await read_model(request, WebhookIn)
    unknown = sorted(set(body.types) - set(EVENT_TYPES))
    if unknown:
        raise InvalidInput.one("types", f"unknown event types: {', '.join(unknown)}")
    settings = request.app[keys.SETTINGS]
    await check_target(body.url, parse_networks(settings.webhook_allow))
    hook = _store(request).create(url=body.url, types=body.types, phone=body.phone)
    return web.json_response(_out(hook, with_secret=True), status=201)


@routes.get("/v1/webhooks")
async def list_webhooks(request: web.Request) -> web.Response:
    return web.json_response({"webhooks": [_out(h) for h in _store(request).all()]})


@routes.get("/v1/webhooks/{webhook_id}")
async def get_webhook(request: web.Request) -> web.Response:
    return web.json_response(_out(_store(request).get(_webhook_id(request))))


@routes.delete("/v1/webhooks/{webhook_id}")
async def delete_webhook(request: web.Request) -> web.Response:
    _store(request).delete(_webhook_id(request))
    return web.Response(status=204)


@routes.post("/v1/webhooks/{webhook_id}/ping")
async def ping_webhook(request: web.Request) -> web.Response:
    delivery = _store(request).enqueue_ping(_webhook_id(request))
    return web.json_response(delivery.as_json(), status=202)


@routes.get("/v1/webhooks/{webhook_id}/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    rows = _store(request).deliveries(_webhook_id(request))
    return web.json_response({"deliveries": [d.as_json() for d in rows]})


@routes.post("/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver")
async def redeliver(request: web.Request) -> web.Response:
    raw = request.match_info["delivery_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidInput.one("delivery_id", "a delivery id (digits)")
    delivery = _store(request).redeliver(_webhook_id(request), int(raw))
    return web.json_response(delivery.as_json(), status=202)
