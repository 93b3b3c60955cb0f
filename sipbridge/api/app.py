"""The aiohttp application: `create_app(settings)` wires the parts, each a cleanup context."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import tomllib
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from sipbridge import catalog
from sipbridge.api import keys
from sipbridge.api.auth import auth_middleware, stored_or_new_key
from sipbridge.api.openapi import build_openapi
from sipbridge.api.problems import problem_middleware
from sipbridge.api.throttle import FailureThrottle
from sipbridge.api.views import routes
from sipbridge.command_log import CommandLog
from sipbridge.config import Settings
from sipbridge.control import CallControl
from sipbridge.dispatch import Dispatcher
from sipbridge.errors import SipBridgeError, StartupError
from sipbridge.pbx_relay import ActionUriRelay
from sipbridge.phone_access import load_access
from sipbridge.phone_http import PhoneHttpClient, PhoneTransports, tls_context
from sipbridge.phone_locks import SharedPhoneLocks
from sipbridge.profiles import load_profiles
from sipbridge.routing import PhoneRoutes
from sipbridge.sip.access import (
    Allowlist,
    ConnectionLimits,
    RateLimiter,
    TokenBucket,
    parse_networks,
)
from sipbridge.sip.listener import ListenerCore, SipListener
from sipbridge.sip.networks import PhoneNetworks
from sipbridge.sip.resolver import ContactResolver, ResolvingSender
from sipbridge.sip.sender import NotifySender
from sipbridge.sip.stream_sender import wire_sender
from sipbridge.sip.uri import uri_host
from sipbridge.tls import server_context, sip_tls
from sipbridge.tracker import TrackerStore
from sipbridge.tracker.sip_feed import RegisterAuth, SipFeed
from sipbridge.tracker.subscriptions import DialogSubscriptions

log = logging.getLogger(__name__)

# A request body over the 20 KB a Poly command may carry is refused (413) before it is read.
MAX_REQUEST_BYTES = catalog.MAX_BODY_BYTES

SenderFactory = Callable[[Settings], NotifySender]


def pjsua_sender(settings: Settings) -> NotifySender:
    """The real UA; imported here so that only `serve` and the integration tests load pjsua2."""
    from sipbridge.sip._pjsua2 import PjsuaSender

    tls = None
    if settings.sip_tls_port is not None:
        tls = sip_tls(
            port=settings.sip_tls_port,
            cert_file=settings.tls_cert_file,
            key_file=settings.tls_key_file,
            ca_file=settings.tls_ca_file,
            verify_peers=settings.tls_verify_phones,
        )
    agent = PjsuaSender(
        host=settings.sip_host,
        port=settings.sip_port,
        transaction_timeout=settings.transaction_timeout,
        contact_host=settings.contact_host,
        tls=tls,
    )
    return wire_sender(agent, transaction_timeout=settings.transaction_timeout, tls=tls)


def create_app(
    settings: Settings,
    *,
    sender_factory: SenderFactory = pjsua_sender,
    store: TrackerStore | None = None,
    worker: int = 0,
) -> web.Application:
    """The application of worker `worker` (0 unless `serve --workers N`, see cli.py).

    Every worker serves the HTTP API with its own SIP user agent; worker 0 alone runs the SIP
    listener (REGISTER copies, dialog events, PBX relay), the subscriptions and the janitor.
    """
    primary = worker == 0
    settings = settings.for_worker(worker)
    app = web.Application(
        middlewares=[problem_middleware, auth_middleware], client_max_size=MAX_REQUEST_BYTES
    )
    app[keys.SETTINGS] = settings
    app[keys.WORKER] = worker
    app[keys.API_KEYS] = frozenset(_api_keys(settings))
    app[keys.AUTH_THROTTLE] = FailureThrottle(
        limit=settings.api_auth_failure_limit, window=settings.api_auth_failure_window
    )
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
        # pjsip is handed addresses only, inside phone_networks (sipbridge.sip.resolver).
        resolving = ResolvingSender(
            sender,
            ContactResolver(
                nameservers=settings.dns_nameservers,
                timeout=settings.resolver_timeout,
                cache_size=settings.dns_cache_size,
            ),
            app[keys.PHONE_NETWORKS],
            # The next target only while Timer F still fits in the deadline (RFC 3263 §4.3).
            failover_within=settings.command_deadline - settings.transaction_timeout,
        )
        listener = await _start_listener(app, settings, resolving) if primary else None
        # Worker 0's listener takes the phones' reports for every worker (workers > 1 need a
        # fixed listen_port, config.py).
        listen_port = listener.port if listener is not None else settings.listen_port
        shared_locks = None
        if settings.workers > 1:
            shared_locks = SharedPhoneLocks(settings.data_dir / "phone-locks")
        # One lane per phone for both transports: NOTIFYs and REST calls share the queue.
        dispatcher = Dispatcher(
            PhoneTransports(resolving, app[keys.PHONE_HTTP]),
            queue_limit=settings.phone_queue_limit,
            deadline=settings.command_deadline,
            shared_locks=shared_locks,
        )
        app[keys.CONTROL] = CallControl(
            app[keys.STORE],
            resolving,
            dispatcher,
            routes=app[keys.ROUTES],
            reports_contact=f"sip:sipbridge@{uri_host(settings.listener_contact_host)}:{listen_port}",
            outbound_proxy=settings.sip_outbound_proxy,
            sip_over_tls=settings.sip_tls_port is not None,
            reports_contact_tls=_reports_contact_tls(listener, settings),
        )
        app[keys.COMMAND_LOG] = CommandLog(app[keys.CONTROL].writes)
        background: list[asyncio.Task[None]] = []
        if listener is not None:
            # PBXs' ACTION-URI NOTIFYs take the same path as HTTP commands from here on.
            app[keys.SIP_FEED].relay = ActionUriRelay(
                app[keys.STORE],
                app[keys.CONTROL],
                app[keys.COMMAND_LOG],
                deadline=settings.sip_relay_deadline,
            )
            loop = asyncio.get_running_loop()
            background = [
                loop.create_task(_expire_registrations(app)),
                loop.create_task(_prune_command_log(app[keys.STORE], settings)),
                loop.create_task(_prune_audit(app[keys.STORE], settings)),
            ]
        yield
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if listener is not None:
            await listener.stop()
        if keys.SUBSCRIPTIONS in app:
            await app[keys.SUBSCRIPTIONS].stop()
        stop = getattr(sender, "stop", None)
        if stop is not None:
            stop()
        if shared_locks is not None:
            shared_locks.close()

    async def phone_http_ctx(app: web.Application) -> AsyncIterator[None]:
        """Profiles, phone credentials and the phone REST client; a bad file stops the start."""
        profiles = load_profiles(settings.sip_profiles_dir)
        access = load_access(settings.phone_credentials_file)
        log.info("sip profiles: %s", ", ".join(profiles.names()))
        networks = PhoneNetworks.parse(settings.phone_networks)
        app[keys.PHONE_NETWORKS] = networks
        client = PhoneHttpClient(
            networks=networks,
            # A REST call holds the phone's lane like a NOTIFY: bounded like its transaction.
            timeout=settings.transaction_timeout,
            tls=tls_context(
                verify=settings.phone_http_verify_tls, ca_file=settings.phone_http_ca_file
            ),
        )
        await client.start()
        app[keys.PROFILES] = profiles
        app[keys.PHONE_HTTP] = client
        app[keys.ROUTES] = PhoneRoutes(
            profiles, access, scheme=settings.phone_http_scheme, port=settings.phone_http_port
        )
        yield
        await client.close()  # deletes the REST sessions it opened

    app.cleanup_ctx.append(tracker_ctx)
    app.cleanup_ctx.append(phone_http_ctx)
    app.cleanup_ctx.append(sip_ctx)
    return app


async def _start_listener(
    app: web.Application, settings: Settings, sender: NotifySender
) -> SipListener:
    """The SIP listener and what stands behind it: REGISTER, dialog and reg NOTIFYs."""
    store = app[keys.STORE]
    subscriptions = None
    if settings.subscribe_dialogs != "none":
        subscriptions = DialogSubscriptions(
            sender,
            listener_host=settings.listener_contact_host,
            # Read when a SUBSCRIBE goes out, after the listener has bound its port.
            listener_port=lambda: app[keys.LISTENER].port,
            expires=settings.dialog_subscription_expires,
            outbound_proxy=settings.sip_outbound_proxy,
        )
        app[keys.SUBSCRIPTIONS] = subscriptions
    feed = SipFeed(
        store,
        subscriptions,
        register_auth=_register_auth(settings),
        networks=app[keys.PHONE_NETWORKS],
    )
    app[keys.SIP_FEED] = feed
    core = ListenerCore(
        feed,
        allowlist=Allowlist(parse_networks(settings.sip_allow)),
        rate_limiter=RateLimiter(
            time.monotonic, rate=settings.sip_rate_limit, burst=settings.sip_rate_burst
        ),
        audit=store.audit,
        stranger_budget=TokenBucket(
            time.monotonic, rate=settings.sip_stranger_rate, burst=settings.sip_stranger_burst
        ),
        answer_udp_strangers=settings.sip_stranger_udp == "answer",
    )
    tls = None
    if settings.listen_tls_port is not None:
        assert settings.tls_cert_file is not None and settings.tls_key_file is not None
        tls = server_context(
            settings.tls_cert_file, settings.tls_key_file, names="tls_cert_file/tls_key_file"
        )
    listener = SipListener(
        core,
        host=settings.listener_host,
        port=settings.listen_port,
        tls=tls,
        tls_port=settings.listen_tls_port or 0,
        connections=ConnectionLimits(
            max_total=settings.sip_tcp_max_connections,
            max_per_source=settings.sip_tcp_max_per_source,
        ),
        idle_timeout=settings.sip_tcp_idle_timeout,
    )
    try:
        await listener.start()
    except OSError as exc:
        raise StartupError(
            f"cannot listen for SIP on {settings.listener_host}:{settings.listen_port}: "
            f"{exc.strerror}"
        ) from exc
    app[keys.LISTENER] = listener
    if subscriptions is not None:
        for phone in store.phones():
            if settings.subscribe_dialogs == "all" or phone.learned_from != "http":
                subscriptions.phone_registered(phone)
        await subscriptions.start()
    return listener


def _reports_contact_tls(listener: SipListener | None, settings: Settings) -> str | None:
    """The listener over TLS as the Contact of commands to TLS phones (worker 0's port)."""
    port = listener.tls_port if listener is not None else settings.listen_tls_port
    if not port:
        return None
    return f"sips:sipbridge@{uri_host(settings.listener_contact_host)}:{port}"


def _register_auth(settings: Settings) -> RegisterAuth | None:
    """The REGISTER credentials, if configured; a bad file stops the start with its name."""
    path = settings.register_credentials_file
    if path is None:
        return None
    try:
        table = tomllib.loads(path.read_text())["register"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise StartupError(f"cannot read [register] from {path}: {exc}") from exc
    if not isinstance(table, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in table.items()
    ):
        raise StartupError(f"[register] in {path} must map phone ids to non-empty passwords")
    log.info(
        "REGISTER needs digest credentials for %d phones (realm %s)",
        len(table),
        settings.register_realm,
    )
    return RegisterAuth(
        realm=settings.register_realm,
        passwords=dict(table),
        algorithms=settings.register_digest_algorithms,
    )


async def _prune_command_log(store: TrackerStore, settings: Settings, every: float = 1.0) -> None:
    """Keep the command log at `command_log_max_rows`, a short delete at a time."""
    while True:
        await asyncio.sleep(every)
        try:
            store.prune_command_log(settings.command_log_max_rows)
        except SipBridgeError as exc:
            log.error("could not prune the command log: %s", exc.detail)


async def _prune_audit(store: TrackerStore, settings: Settings, every: float = 10.0) -> None:
    """Keep the audit table within `sip_audit_max_rows` and `sip_audit_max_age`, a short delete
    at a time (strangers add at most `sip_stranger_rate` rows a second); a full batch means a
    backlog, worked off in further short batches."""
    batch = 1_000
    pause = every
    while True:
        await asyncio.sleep(pause)
        try:
            gone = store.prune_audit(
                keep=settings.sip_audit_max_rows, max_age=settings.sip_audit_max_age, at_most=batch
            )
        except SipBridgeError as exc:
            log.error("could not prune the audit table: %s", exc.detail)
            gone = 0
        pause = 0.1 if gone >= batch else every


async def _expire_registrations(app: web.Application, every: float = 30.0) -> None:
    """Registrations that ran out leave the tracker on their own, with their calls."""
    while True:
        await asyncio.sleep(every)
        try:
            gone = app[keys.STORE].purge_expired()
        except SipBridgeError as exc:
            log.error("could not purge expired registrations: %s", exc.detail)
            continue
        for phone_id in gone:
            if keys.SUBSCRIPTIONS in app:
                app[keys.SUBSCRIPTIONS].phone_gone(phone_id)
        if gone:
            log.info("registrations expired: %s", ", ".join(gone))



def _api_keys(settings: Settings) -> tuple[str, ...]:
    if settings.api_keys:
        return settings.api_keys
    key, path, created = stored_or_new_key(settings.data_dir)
    if created:
        log.warning("no API key configured: generated one in %s", path)
    else:
        log.info("no API key configured: using the one in %s", path)
    return (key,)
