"""The aiohttp application: `create_app(settings)` wires the parts, each a cleanup context."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from sipbridge import catalog
from sipbridge.api import keys
from sipbridge.api.auth import auth_middleware, stored_or_new_key
from sipbridge.api.openapi import build_openapi
from sipbridge.api.problems import problem_middleware
from sipbridge.api.views import routes
from sipbridge.config import Settings
from sipbridge.control import CallControl
from sipbridge.dispatch import Dispatcher
from sipbridge.sip.sender import NotifySender
from sipbridge.tracker import TrackerStore

log = logging.getLogger(__name__)

# A request body over the 20 KB a Poly command may carry is refused (413) before it is read.
MAX_REQUEST_BYTES = catalog.MAX_BODY_BYTES

SenderFactory = Callable[[Settings], NotifySender]


def pjsua_sender(settings: Settings) -> NotifySender:
    """The real UA; imported here so that only `serve` and the integration tests load pjsua2."""
    from sipbridge.sip._pjsua2 import PjsuaSender

    return PjsuaSender(
        host=settings.sip_host,
        port=settings.sip_port,
        transaction_timeout=settings.sip_transaction_timeout,
        contact_host=settings.contact_host,
    )


def create_app(
    settings: Settings,
    *,
    sender_factory: SenderFactory = pjsua_sender,
    store: TrackerStore | None = None,
) -> web.Application:
    app = web.Application(
        middlewares=[problem_middleware, auth_middleware], client_max_size=MAX_REQUEST_BYTES
    )
    app[keys.SETTINGS] = settings
    app[keys.API_KEYS] = frozenset(_api_keys(settings))
    openapi = build_openapi()

    async def openapi_view(_: web.Request) -> web.Response:
        return web.json_response(openapi)

    app.router.add_get("/v1/openapi.json", openapi_view)
    app.router.add_routes(routes)

    async def tracker_ctx(app: web.Application) -> AsyncIterator[None]:
        app[keys.STORE] = store or TrackerStore(settings.database_path)
        log.info("tracker database: %s", settings.database_path if store is None else "(given)")
        yield
        app[keys.STORE].close()

    async def sip_ctx(app: web.Application) -> AsyncIterator[None]:
        sender = sender_factory(settings)
        start = getattr(sender, "start", None)
        if start is not None:
            start()
        app[keys.SENDER] = sender
        dispatcher = Dispatcher(
            sender, queue_limit=settings.phone_queue_limit, deadline=settings.command_deadline
        )
        app[keys.CONTROL] = CallControl(app[keys.STORE], sender, dispatcher)
        yield
        stop = getattr(sender, "stop", None)
        if stop is not None:
            stop()

    app.cleanup_ctx.append(tracker_ctx)
    app.cleanup_ctx.append(sip_ctx)
    return app


def _api_keys(settings: Settings) -> tuple[str, ...]:
    if settings.api_keys:
        return settings.api_keys
    key, path, created = stored_or_new_key(settings.data_dir)
    if created:
        log.warning("no API key configured: generated one in %s", path)
    else:
        log.info("no API key configured: using the one in %s", path)
    return (key,)
