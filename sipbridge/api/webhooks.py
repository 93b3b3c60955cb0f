"""The webhook routes (/v1/webhooks): subscribe, list, delete, ping, delivery log, redeliver.

The secret is shown once, in the answer to the POST; later reads never include it.
"""

from __future__ import annotations

import re
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

_WEBHOOK_ID = re.compile(r"wh_[0-9a-f]{16}")


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048)
    types: list[str] = Field(default_factory=list, max_length=len(EVENT_TYPES))
    phone: str | None = Field(default=None, pattern=PHONE_ID_PATTERN)


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
