"""Handlers of the front API (/v1): parse the request, call the domain, shape the answer.

Handlers raise sipbridge errors and never build error responses themselves; `problems.py` does.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from sipbridge import catalog
from sipbridge.api import keys
from sipbridge.api.schemas import (
    PHONE_ID_PATTERN,
    CallIn,
    CallList,
    CallOut,
    CommandIn,
    PhoneIn,
    PhoneList,
    PhoneOut,
)
from sipbridge.catalog._fields import CALL_ID_PATTERN
from sipbridge.errors import InvalidInput, MalformedBody, UnsupportedMediaType
from sipbridge.sip.uri import parse_uri
from sipbridge.tracker import Transport

Model = TypeVar("Model", bound=BaseModel)

routes = web.RouteTableDef()

_PHONE_ID = re.compile(PHONE_ID_PATTERN)
_CALL_ID = re.compile(CALL_ID_PATTERN)


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        text=model.model_dump_json(), status=status, content_type="application/json"
    )


def _phone_id(request: web.Request) -> str:
    phone_id = request.match_info["phone"]
    if not _PHONE_ID.fullmatch(phone_id):
        raise InvalidInput.one("phone", "letters, digits and ._~+- only, 1-64 characters")
    return phone_id


def _call_id(request: web.Request) -> str:
    call_id = request.match_info["call_id"]
    if len(call_id) > 256 or not _CALL_ID.fullmatch(call_id):
        raise InvalidInput.one("call_id", "not a SIP Call-ID (RFC 3261 §25.1 callid)")
    return call_id


async def read_json(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The body as a JSON object: 415 if not JSON, 400 if malformed, 422 if not an object."""
    raw = await request.read()
    if not raw.strip() and allow_empty:
        return {}
    content_type = request.content_type
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"send the body as application/json, not {content_type or 'nothing'}"
        )
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedBody(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidInput.one("body", "must be a JSON object")
    return value


async def read_model(request: web.Request, model: type[Model]) -> Model:
    data = await read_json(request)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(catalog.problems_from_validation(exc)) from exc


# -- tracker feed -------------------------------------------------------------------------------


@routes.put("/v1/phones/{phone}")
async def put_phone(request: web.Request) -> web.Response:
    phone_id = _phone_id(request)
    body = await read_model(request, PhoneIn)
    contact = parse_uri(body.contact)
    transport: Transport = body.transport or _transport_of(contact.transport, contact.scheme)
    phone = request.app[keys.STORE].register_phone(
        phone_id,
        contact=body.contact,
        transport=transport,
        expires=body.expires,
        aor=body.aor or f"sip:{phone_id}@{contact.host}",
        user_agent=body.user_agent,
    )
    return _json(PhoneOut.of(phone))


def _transport_of(param: str | None, scheme: str) -> Transport:
    if param in ("udp", "tcp", "tls"):
        return param  # type: ignore[return-value]
    if param is not None:
        raise InvalidInput.one("contact", f"transport={param} is not supported (udp, tcp, tls)")
    return "tls" if scheme == "sips" else "udp"


@routes.get("/v1/phones/{phone}")
async def get_phone(request: web.Request) -> web.Response:
    return _json(PhoneOut.of(request.app[keys.STORE].phone(_phone_id(request))))


@routes.delete("/v1/phones/{phone}")
async def delete_phone(request: web.Request) -> web.Response:
    phone_id = _phone_id(request)
    store = request.app[keys.STORE]
    store.phone(phone_id)  # 404 if unknown
    store.remove_phone(phone_id)
    return web.Response(status=204)


@routes.get("/v1/phones")
async def list_phones(request: web.Request) -> web.Response:
    phones = request.app[keys.STORE].phones()
    return _json(PhoneList(phones=[PhoneOut.of(p) for p in phones]))


@routes.put("/v1/calls/{call_id}")
async def put_call(request: web.Request) -> web.Response:
    call_id = _call_id(request)
    body = await read_model(request, CallIn)
    call = request.app[keys.STORE].record_call(call_id, phone_id=body.phone, state=body.state)
    return _json(CallOut.of(call))


@routes.get("/v1/calls/{call_id}")
async def get_call(request: web.Request) -> web.Response:
    return _json(CallOut.of(request.app[keys.STORE].call(_call_id(request))))


@routes.delete("/v1/calls/{call_id}")
async def delete_call(request: web.Request) -> web.Response:
    call_id = _call_id(request)
    store = request.app[keys.STORE]
    store.call(call_id)  # 404 if unknown
    store.remove_call(call_id)
    return web.Response(status=204)


@routes.get("/v1/calls")
async def list_calls(request: web.Request) -> web.Response:
    phone = request.query.get("phone")
    calls = request.app[keys.STORE].calls(phone_id=phone)
    return _json(CallList(calls=[CallOut.of(c) for c in calls]))


# -- commands -----------------------------------------------------------------------------------


@routes.post("/v1/calls/{call_id}/{action}")
async def call_action(request: web.Request) -> web.Response:
    call_id = _call_id(request)
    body = await read_json(request, allow_empty=True)
    result = await request.app[keys.CONTROL].act_on_call(
        call_id, request.match_info["action"], body
    )
    return web.json_response(asdict(result))


@routes.post("/v1/phones/{phone}/commands")
async def phone_command(request: web.Request) -> web.Response:
    phone_id = _phone_id(request)
    body = await read_model(request, CommandIn)
    result = await request.app[keys.CONTROL].send_command(phone_id, body.command_uri, body.data)
    return web.json_response(asdict(result))


@routes.post("/v1/phones/{phone}/dial")
async def dial(request: web.Request) -> web.Response:
    phone_id = _phone_id(request)
    body = await read_json(request)
    result = await request.app[keys.CONTROL].dial(phone_id, body)
    return web.json_response(asdict(result))


@routes.get("/v1/health")
async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})
