"""`Idempotency-Key` on the command POSTs (the IETF httpapi draft's header): a retry with the
same key and the same request gets the first answer again — 200, 502, 504 alike — and no second
command reaches the phone, across workers and restarts, for `RETENTION` seconds.

The key is the caller's, scoped to the credentials it came with (two clients choosing the same
key do not meet). The first request claims the key with one INSERT; a retry that arrives while
the first is still running waits for its answer (a client whose connection dropped retries at
once). The
same key with another request is 422. A first request whose client left runs on to its end
(shielded from cancellation) and its answer is kept. One whose worker died before answering leaves
the key claimed and unanswered: a retry then gets 409 after waiting, never a second send, since
the command may have reached the phone (the command log says).
"""

from __future__ import annotations

import asyncio
import hashlib
import re

from aiohttp import web
from aiohttp.typedefs import Handler

from sipbridge.api import keys
from sipbridge.api.problems import from_error, from_http_exception
from sipbridge.errors import Conflict, InvalidInput, SipBridgeError
from sipbridge.tracker.idempotency import IdempotencyRecords

RETENTION = 24 * 3600.0
COMMAND_ROUTES = frozenset(
    {"/v1/calls/{call_id}/{action}", "/v1/phones/{phone}/commands", "/v1/phones/{phone}/dial"}
)
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_WAIT_STEP = 0.05
_KEPT_HEADERS = ("Content-Type", "Retry-After", "Location")


def _request_hash(request: web.Request, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.path_qs.encode(), body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _owner(request: web.Request) -> str:
    credentials = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
    return hashlib.sha256(credentials).hexdigest()[:32]


def _replay(status: int, headers: dict[str, str], body: bytes) -> web.Response:
    response = web.Response(status=status, body=body, headers=headers)
    response.headers["Idempotent-Replayed"] = "true"
    return response


@web.middleware
async def idempotency_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    key = request.headers.get("Idempotency-Key")
    route = request.match_info.route.resource
    if (
        key is None
        or request.method != "POST"
        or route is None
        or route.canonical not in COMMAND_ROUTES
    ):
        return await handler(request)
    if not _KEY.fullmatch(key):
        raise InvalidInput.one("Idempotency-Key", "1 to 255 visible ASCII characters")
    body = await request.read()
    owner, wanted = _owner(request), _request_hash(request, body)
    records = IdempotencyRecords(request.app[keys.STORE])
    while not records.claim(owner, key, wanted):
        replayed = await _answer_of_the_first(request, records, owner, key, wanted)
        if replayed is not None:
            return replayed
        # The first request ended with nothing to keep (it failed inside): this one runs.
    # Shielded: a client that drops its connection may get its handler cancelled (aiohttp's
    # handler_cancellation), but the command may have left: it runs on, and its answer is kept.
    first = asyncio.ensure_future(_run_and_record(request, handler, records, owner, key))
    return await asyncio.shield(first)


async def _run_and_record(
    request: web.Request, handler: Handler, records: IdempotencyRecords, owner: str, key: str
) -> web.StreamResponse:
    try:
        response = await handler(request)
    except SipBridgeError as exc:
        response = from_error(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            records.release(owner, key)
            raise
        response = from_http_exception(exc)
    except BaseException:
        records.release(owner, key)
        raise
    if isinstance(response, web.Response) and isinstance(response.body, bytes | bytearray):
        kept = {h: response.headers[h] for h in _KEPT_HEADERS if h in response.headers}
        records.finish(
            owner, key, status=response.status, headers=kept, body=bytes(response.body)
        )
    else:
        records.release(owner, key)
    return response


async def _answer_of_the_first(
    request: web.Request, records: IdempotencyRecords, owner: str, key: str, wanted: str
) -> web.Response | None:
    """The first request's answer once it has one; None when its key was released."""
    settings = request.app[keys.SETTINGS]
    # The first answer comes within the deadline plus the transaction's bound, and a write.
    patience = settings.command_deadline + settings.transaction_timeout + 2.0
    waited = 0.0
    while True:
        recorded = records.get(owner, key)
        if recorded is None:
            return None
        if recorded.request_hash != wanted:
            raise InvalidInput.one(
                "Idempotency-Key",
                "this key was used with another request (method, path or body) within 24 h",
            )
        if recorded.status is not None:
            return _replay(recorded.status, recorded.headers, recorded.body)
        if waited >= patience:
            raise Conflict(
                "the first request with this Idempotency-Key has not been answered (still "
                "running, or its worker stopped); its command may have reached the phone: "
                "see GET /v1/commands"
            )
        await asyncio.sleep(_WAIT_STEP)
        waited += _WAIT_STEP
