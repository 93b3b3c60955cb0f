"""Handlers of the front API (/v1): parse the request, call the domain, shape the answer.

Handlers raise sipbridge errors and never build error responses themselves; `problems.py` does.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from sipbridge import catalog
from sipbridge.api import keys
from sipbridge.api.async_commands import start_async, wants_async
from sipbridge.api.schemas import (
    BatchOut,
    CallBatchIn,
    CallIn,
    CallList,
    CallOut,
    CatalogOut,
    CommandIn,
    CommandLogOut,
    CommandLogPage,
    PhoneBatchIn,
    PhoneIn,
    PhoneList,
    PhoneOut,
    ProfileList,
    ProfileOut,
)
from sipbridge.catalog import CALL_ID_PATTERN
from sipbridge.commands import REQUESTED, CommandOptions, CommandResult, Planned, Requested
from sipbridge.errors import InvalidInput, MalformedBody, UnknownPhone, UnsupportedMediaType
from sipbridge.sip.networks import PhoneNetworks
from sipbridge.sip.uri import SipUri, parse_uri, sip_transport
from sipbridge.tracker import Phone, SipTransport, TrackerStore
from sipbridge.tracker.models import PHONE_ID_PATTERN
from sipbridge.tracker.store import KEEP_PIN

Model = TypeVar("Model", bound=BaseModel)

routes = web.RouteTableDef()

_PHONE_ID = re.compile(PHONE_ID_PATTERN)
_CALL_ID = re.compile(CALL_ID_PATTERN)
# A batch of 1,000 phones is about 150 KB; single routes keep the 20 KB limit (app.py).
_BATCH_MAX_BYTES = 1024 * 1024


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        text=model.model_dump_json(), status=status, content_type="application/json"
    )


# pydantic's serializer writes the dataclass straight to JSON bytes: dataclasses.asdict plus
# json.dumps cost a noticeable share of a command's CPU (docs/performance.md).
_COMMAND_RESULT = TypeAdapter(CommandResult)


def _result_json(result: CommandResult | Planned) -> web.Response:
    if isinstance(result, Planned):
        body = {"dry_run": True, **dataclasses.asdict(result)}
        return web.json_response(body)
    return web.Response(body=_COMMAND_RESULT.dump_json(result), content_type="application/json")


_CLIENT_STATE = re.compile(r"^[\x20-\x7e]{1,256}$")
_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no", ""})


def _flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "").lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidInput.one(name, "true or false")


def _options(request: web.Request) -> CommandOptions:
    """`Client-State` (echoed on the command's events), `?force=`, `?dry_run=`."""
    client_state = request.headers.get("Client-State")
    if client_state is not None and not _CLIENT_STATE.fullmatch(client_state):
        raise InvalidInput.one("Client-State", "1 to 256 printable ASCII characters")
    return CommandOptions(
        client_state=client_state, force=_flag(request, "force"), dry_run=_flag(request, "dry_run")
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
    _check_profile(request, body.profile, "profile")
    phone = _register(request.app[keys.STORE], request.app[keys.PHONE_NETWORKS], phone_id, body)
    return _json(PhoneOut.of(phone))


def _check_profile(request: web.Request, profile: str | None, field: str) -> None:
    """A pin names a loaded profile (else every later command to the phone would fail)."""
    if profile is not None and request.app[keys.PROFILES].get(profile) is None:
        known = ", ".join(request.app[keys.PROFILES].names())
        raise InvalidInput.one(field, f"no sip profile {profile!r}; known: {known}")


def _register(
    store: TrackerStore,
    networks: PhoneNetworks,
    phone_id: str,
    body: PhoneIn,
    field: str = "contact",
) -> Phone:
    contact = parse_uri(body.contact)
    # An address is judged now; a name when it is resolved, before anything is sent to it.
    refused = networks.why_not_host(contact.host)
    if refused is not None:
        raise InvalidInput.one(field, refused)
    transport: SipTransport = body.transport or _transport_of(contact, field)
    return store.register_phone(
        phone_id,
        contact=body.contact,
        transport=transport,
        expires=body.expires,
        aor=body.aor or f"sip:{phone_id}@{contact.host}",
        user_agent=body.user_agent,
        # Absent: keep the operator's pin; null: remove it; a name: pin it.
        profile=body.profile if "profile" in body.model_fields_set else KEEP_PIN,
    )


def _transport_of(contact: SipUri, field: str) -> SipTransport:
    transport = sip_transport(contact)
    if transport is None:
        raise InvalidInput.one(
            field, f"transport={contact.transport} is not supported (udp, tcp, tls)"
        )
    return transport


@routes.put("/v1/phones")
async def put_phones(request: web.Request) -> web.Response:
    """Register or refresh up to BATCH_LIMIT phones at once: all of them, or none (422)."""
    body = await read_model(request.clone(client_max_size=_BATCH_MAX_BYTES), PhoneBatchIn)
    store = request.app[keys.STORE]
    networks = request.app[keys.PHONE_NETWORKS]
    for index, item in enumerate(body.phones):
        _check_profile(request, item.profile, f"phones.{index}.profile")
    with store.transaction():
        for index, item in enumerate(body.phones):
            _register(store, networks, item.id, item, field=f"phones.{index}.contact")
    return _json(BatchOut(stored=len(body.phones)))


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


@routes.put("/v1/calls")
async def put_calls(request: web.Request) -> web.Response:
    """Record up to BATCH_LIMIT calls at once: all of them, or none (422 names the bad item)."""
    body = await read_model(request.clone(client_max_size=_BATCH_MAX_BYTES), CallBatchIn)
    store = request.app[keys.STORE]
    with store.transaction():
        for index, item in enumerate(body.calls):
            try:
                store.record_call(item.call_id, phone_id=item.phone, state=item.state)
            except UnknownPhone as exc:
                raise InvalidInput.one(f"calls.{index}.phone", exc.detail) from exc
    return _json(BatchOut(stored=len(body.calls)))


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


Run = Callable[[CommandOptions], Awaitable["CommandResult | Planned"]]


@routes.post("/v1/calls/{call_id}/{action}")
async def call_action(request: web.Request) -> web.Response:
    call_id = _call_id(request)
    body = await read_json(request, allow_empty=True)
    control, transport = request.app[keys.CONTROL], _transport_param(request)

    def run(options: CommandOptions) -> Awaitable[CommandResult | Planned]:
        return control.act_on_call(
            call_id,
            request.match_info["action"],
            body,
            transport,
            source=_source(request),
            options=options,
        )

    return await _respond(request, run)


@routes.post("/v1/phones/{phone}/commands")
async def phone_command(request: web.Request) -> web.Response:
    phone_id = _phone_id(request)
    body = await read_model(request, CommandIn)
    control, transport = request.app[keys.CONTROL], _transport_param(request)

    def run(options: CommandOptions) -> Awaitable[CommandResult | Planned]:
        return control.send_command(
            phone_id,
            body.command_uri,
            body.data,
            transport,
            source=_source(request),
            options=options,
        )

    return await _respond(request, run)


@routes.post("/v1/phones/{phone}/dial")
async def dial(request: web.Request) -> web.Response:
    phone_id = _phone_id(request)
    body = await read_json(request)
    control, transport = request.app[keys.CONTROL], _transport_param(request)

    def run(options: CommandOptions) -> Awaitable[CommandResult | Planned]:
        return control.dial(phone_id, body, transport, source=_source(request), options=options)

    return await _respond(request, run)


async def _respond(request: web.Request, run: Run) -> web.Response:
    """Answer with the result; with `Prefer: respond-async` (RFC 7240), 202 at once and the
    result later at /v1/commands/{id} (api/async_commands.py)."""
    options = _options(request)
    if options.dry_run or not wants_async(request):
        return _result_json(await run(options))
    return await start_async(request, run, options, _result_json)


def _source(request: web.Request) -> str:
    """Who asked, as the command log names it."""
    return f"http:{request.remote}"


@routes.get("/v1/commands")
async def command_log(request: web.Request) -> web.Response:
    """The command log, newest first; page with ?before=<id of the last entry seen>."""
    limit = _int_query(request, "limit", default=50, low=1, high=500)
    before = _int_query(request, "before", default=None, low=1, high=2**62)
    entries = request.app[keys.STORE].command_log(limit=limit, before=before)
    page = CommandLogPage(
        commands=[CommandLogOut.of(entry) for entry in entries],
        next_before=entries[-1].id if len(entries) == limit else None,
    )
    return _json(page)


def _int_query(request: web.Request, name: str, *, default: int | None, low: int, high: int) -> Any:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidInput.one(name, f"must be a whole number from {low} to {high}")
    return int(raw)


def _transport_param(request: web.Request) -> Requested:
    """`?transport=auto|sip|http` on every command route (default auto, commands/plan.py)."""
    value = request.query.get("transport", "auto")
    for requested in REQUESTED:
        if value == requested:
            return requested
    raise InvalidInput.one("transport", "must be auto, sip or http")


@routes.get("/v1/catalog")
async def get_catalog(request: web.Request) -> web.Response:
    return _json(CatalogOut.of(catalog.ALL_COMMANDS))


@routes.get("/v1/profiles")
async def get_profiles(request: web.Request) -> web.Response:
    book = request.app[keys.PROFILES]
    return _json(ProfileList(profiles=[ProfileOut.of(p) for p in book.profiles]))


@routes.get("/v1/health")
async def health(request: web.Request) -> web.Response:
    # Which worker answered (`serve --workers N`): 0 unless there are several.
    return web.json_response({"status": "ok", "worker": request.app[keys.WORKER]})
