"""`Prefer: respond-async` (RFC 7240 §4.1) on a command: 202 Accepted at once, with `Location:
/v1/commands/{id}`; the command runs as it would have, and `GET /v1/commands/{id}` shows it
queued, then completed or failed with the very answer the synchronous request would have had.
Its start is a `command.queued` event, its end `command.completed` / `command.failed`.

The command is first planned as a dry run, so bad input, an unknown call or a refused state is
still answered at once (4xx), not found out later. A record still queued when its worker stops
is failed at the worker's next start, its outcome unknown (the command may have reached the
phone; the command log says).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sipbridge.api import keys
from sipbridge.api.problems import from_error
from sipbridge.errors import InvalidInput, NotFound, SipBridgeError
from sipbridge.tracker.async_commands import AsyncCommands

if TYPE_CHECKING:
    from sipbridge.commands import CommandOptions, CommandResult, Planned

log = logging.getLogger(__name__)

routes = web.RouteTableDef()
TASKS: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("async_command_tasks")
RETENTION = 24 * 3600.0


def wants_async(request: web.Request) -> bool:
    """`Prefer: respond-async` (any of its comma- or semicolon-separated preferences)."""
    for header in request.headers.getall("Prefer", []):
        for preference in header.split(","):
            if preference.split(";")[0].strip().lower() == "respond-async":
                return True
    return False


async def start_async(
    request: web.Request,
    run: Callable[[CommandOptions], Awaitable[CommandResult | Planned]],
    options: CommandOptions,
    render: Callable[[Any], web.Response],
) -> web.Response:
    planned = await run(dataclasses.replace(options, dry_run=True))  # refusals answered now
    records = AsyncCommands(request.app[keys.STORE])
    command_id = records.queue(
        worker=request.app[keys.WORKER],
        event={
            "phone": getattr(planned, "phone", None),
            "call_id": getattr(planned, "call_id", None),
            "client_state": options.client_state,
            "data": {"command_uri": getattr(planned, "command_uri", None)},
        },
    )

    async def finish() -> None:
        try:
            response = render(await run(options))
        except SipBridgeError as exc:
            response = from_error(exc)
        except Exception as exc:  # logged, and recorded as the 500 it would have been
            log.exception("asynchronous command %d failed", command_id)
            response = from_error(SipBridgeError(f"internal error: {exc!r}"))
        body = response.body if isinstance(response.body, bytes | bytearray) else b""
        try:
            records.end(command_id, http_status=response.status, body=bytes(body))
        except SipBridgeError as exc:
            log.error("asynchronous command %d: result not recorded: %s", command_id, exc.detail)

    task = asyncio.get_running_loop().create_task(finish())
    tasks = request.app[TASKS]
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    location = f"/v1/commands/{command_id}"
    return web.json_response(
        {"id": command_id, "state": "queued", "location": location},
        status=202,
        headers={"Location": location},
    )


@routes.get("/v1/commands/{id}")
async def async_command(request: web.Request) -> web.Response:
    text = request.match_info["id"]
    if not text.isdigit() or len(text) > 18:
        raise InvalidInput.one("id", "an asynchronous command's id (a whole number)")
    record = AsyncCommands(request.app[keys.STORE]).get(int(text))
    if record is None:
        raise NotFound(f"no asynchronous command {text}")
    body: dict[str, Any] = {
        "id": record.id,
        "state": record.state,
        "created_at": record.created_at,
        "ended_at": record.ended_at,
        "http_status": record.http_status,
        "result": json.loads(record.body) if record.body else None,
    }
    return web.json_response(body)


async def async_commands_ctx(app: web.Application) -> AsyncIterator[None]:
    """Fail what this worker left queued when it last stopped; at the end, let the commands
    under way finish (each is bounded by its deadline)."""
    gone = AsyncCommands(app[keys.STORE]).interrupted(app[keys.WORKER])
    if gone:
        log.warning("%d asynchronous commands were interrupted by the last stop", gone)
    running: set[asyncio.Task[None]] = set()
    app[TASKS] = running
    yield
    tasks = set(running)
    if tasks:
        settings = app[keys.SETTINGS]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*tasks, return_exceptions=True),
                settings.command_deadline + settings.transaction_timeout + 1,
            )
