"""The aiohttp application: `create_app(settings)` builds the parts, one cleanup context each.

In start order (cleanup runs in reverse): the tracker; the phone side (profiles, credentials,
REST client); the SIP user agent; the listener's sockets (their ports go in every NOTIFY's
Contact); the command path; the listener serving them; the housekeeping tasks. Each part is
built with the parts it needs, which already exist when its context runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import aiohttp
from aiohttp import web

from sipbridge import catalog
from sipbridge.admin.alarm_rules import AlarmRules
from sipbridge.admin.alarm_views import routes as alarm_routes
from sipbridge.admin.auth import device_api_middleware
from sipbridge.admin.certificates import not_after
from sipbridge.admin.identity import KeyRing, UserGate
from sipbridge.admin.kpi import CommandCounters
from sipbridge.admin.kpi_recorder import KpiRecorder
from sipbridge.admin.kpi_views import routes as kpi_routes
from sipbridge.admin.metrics import Metrics
from sipbridge.admin.setup import ensure_first_user
from sipbridge.admin.telemetry import Telemetry
from sipbridge.admin.throttle import FailureThrottle
from sipbridge.admin.views import routes as device_api_routes
from sipbridge.api import keys, kpi_probes
from sipbridge.api.async_commands import async_commands_ctx
from sipbridge.api.async_commands import routes as async_routes
from sipbridge.api.auth import auth_middleware, stored_or_new_key
from sipbridge.api.events import EVENT_HUB, HEARTBEAT, EventHub
from sipbridge.api.events import routes as event_routes
from sipbridge.api.idempotency import RETENTION, idempotency_middleware
from sipbridge.api.openapi import build_openapi
from sipbridge.api.problems import problem_middleware
from sipbridge.api.views import routes
from sipbridge.api.webhook_delivery import Deliverer
from sipbridge.api.webhooks import routes as webhook_routes
from sipbridge.commands import CallControl, Journal, Lanes, Planner, SharedPhoneLocks
from sipbridge.config import Settings
from sipbridge.errors import SipBridgeError, StartupError
from sipbridge.pbx.relay import ActionUriRelay
from sipbridge.pbx.router import InboundRouter
from sipbridge.phone.access import load_access
from sipbridge.phone.http import PhoneHttpClient, tls_context
from sipbridge.phone.profiles import load_profiles
from sipbridge.sip.access import (
    Allowlist,
    ConnectionLimits,
    RateLimiter,
    TokenBucket,
    parse_networks,
)
from sipbridge.sip.agent import user_agent
from sipbridge.sip.listener import ListenerCore, ListenerSockets, SipListener
from sipbridge.sip.networks import PhoneNetworks
from sipbridge.sip.resolver import ContactResolver, ResolvingSender
from sipbridge.sip.sender import NotifySender
from sipbridge.sip.uri import uri_host
from sipbridge.tls import server_context, sip_tls
from sipbridge.tracker import TrackerStore
from sipbridge.tracker.alarm_log import AlarmLog
from sipbridge.tracker.async_commands import AsyncCommands
from sipbridge.tracker.credentials import Credentials
from sipbridge.tracker.event_log import EventLog
from sipbridge.tracker.group_commit import GroupCommit
from sipbridge.tracker.heartbeat import BEAT_EVERY, Heartbeats, WorkerBeat
from sipbridge.tracker.idempotency import IdempotencyRecords
from sipbridge.tracker.kpi_log import KpiLog
from sipbridge.tracker.sip_feed import RegisterAuth, SipFeed
from sipbridge.tracker.subscriptions import DialogSubscriptions
from sipbridge.tracker.webhook_store import WebhookStore

log = logging.getLogger(__name__)

# A request body over the 20 KB a Poly command may carry is refused (413) before it is read.
MAX_REQUEST_BYTES = catalog.MAX_BODY_BYTES

SenderFactory = Callable[[Settings], NotifySender]


def pjsua_sender(settings: Settings) -> NotifySender:
    """The real UA, from the settings."""
    tls = None
    if settings.sip_tls_port is not None:
        tls = sip_tls(
            port=settings.sip_tls_port,
            cert_file=settings.tls_cert_file,
            key_file=settings.tls_key_file,
            ca_file=settings.tls_ca_file,
            verify_peers=settings.tls_verify_phones,
        )
    return user_agent(
        host=settings.sip_host,
        port=settings.sip_port,
        transaction_timeout=settings.transaction_timeout,
        contact_host=settings.contact_host,
        tls=tls,
    )


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
        middlewares=[
            problem_middleware,
            device_api_middleware,
            auth_middleware,
            idempotency_middleware,
        ],
        client_max_size=MAX_REQUEST_BYTES,
    )
    app[keys.SETTINGS] = settings
    app[keys.WORKER] = worker
    app[keys.STARTED_AT] = time.time()
    app[keys.METRICS_ALLOW] = tuple(parse_networks(settings.metrics_allow))
    app[keys.API_KEYS] = frozenset(_api_keys(settings))
    app[keys.AUTH_THROTTLE] = FailureThrottle(
        limit=settings.api_auth_failure_limit, window=settings.api_auth_failure_window
    )
    openapi = build_openapi()

    async def openapi_view(_: web.Request) -> web.Response:
        return web.json_response(openapi)

    app.router.add_get("/v1/openapi.json", openapi_view)
    app.router.add_routes(routes)
    app.router.add_routes(webhook_routes)
    app.router.add_routes(device_api_routes)
    app.router.add_routes(event_routes)
    app.router.add_routes(async_routes)
    app.router.add_routes(kpi_routes)
    app.router.add_routes(alarm_routes)

    async def tracker_ctx(app: web.Application) -> AsyncIterator[None]:
        app[keys.STORE] = store or TrackerStore(settings.database_path)
        log.info("tracker database: %s", settings.database_path if store is None else "(given)")
        credentials = Credentials(app[keys.STORE])
        if primary:
            ensure_first_user(credentials, settings)
        app[keys.CREDENTIALS] = credentials
        app[keys.USERS] = UserGate(credentials)
        app[keys.KEY_RING] = KeyRing(app[keys.API_KEYS], credentials)
        yield
        app[keys.STORE].close()

    async def alarms_ctx(app: web.Application) -> AsyncIterator[None]:
        """The alarm rules of this worker and their view of the active alarms, re-read every
        ALARM_SYNC_EVERY seconds so an alarm raised by another worker is cleared here too."""
        alarm_log = AlarmLog(app[keys.STORE], history_max_rows=settings.alarm_history_max_rows)
        rules = AlarmRules(
            alarm_log,
            unreachable_after=settings.alarm_unreachable_after,
            active=_active_alarms(alarm_log),
        )
        app[keys.ALARM_LOG] = alarm_log
        app[keys.ALARM_RULES] = rules
        task = asyncio.get_running_loop().create_task(_sync_alarms(alarm_log, rules))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def phone_ctx(app: web.Application) -> AsyncIterator[None]:
        """Profiles, phone credentials and the phone REST client; a bad file stops the start."""
        app[keys.PROFILES] = load_profiles(settings.sip_profiles_dir)
        app[keys.PHONE_ACCESS] = load_access(settings.phone_credentials_file)
        log.info("sip profiles: %s", ", ".join(app[keys.PROFILES].names()))
        app[keys.PHONE_NETWORKS] = PhoneNetworks.parse(settings.phone_networks)
        client = PhoneHttpClient(
            networks=app[keys.PHONE_NETWORKS],
            # A REST call holds the phone's lane like a NOTIFY: bounded like its transaction.
            timeout=settings.transaction_timeout,
            tls=tls_context(
                verify=settings.phone_http_verify_tls, ca_file=settings.phone_http_ca_file
            ),
        )
        await client.start()
        app[keys.PHONE_HTTP] = client
        yield
        await client.close()  # deletes the REST sessions it opened

    async def user_agent_ctx(app: web.Application) -> AsyncIterator[None]:
        """The SIP user agent, handed addresses only, inside phone_networks (sip/resolver.py)."""
        agent = ResolvingSender(
            sender_factory(settings),
            ContactResolver(
                nameservers=settings.dns_nameservers,
                timeout=settings.resolver_timeout,
                cache_size=settings.dns_cache_size,
            ),
            app[keys.PHONE_NETWORKS],
            # The next target only while Timer F still fits in the deadline (RFC 3263 §4.3).
            failover_within=settings.command_deadline - settings.transaction_timeout,
        )
        part = f"user-agent:worker {worker}"
        try:
            agent.start()
        except StartupError as exc:  # its port in use, a bad address: a critical alarm
            app[keys.ALARM_RULES].start_failed(part, exc.detail)
            raise
        app[keys.ALARM_RULES].started(part)
        app[keys.SENDER] = agent
        yield
        agent.stop()

    async def listener_sockets_ctx(app: web.Application) -> AsyncIterator[None]:
        """Worker 0's listener sockets, bound before the command path that names their ports."""
        tls_port = settings.listen_tls_port
        try:
            sockets = ListenerSockets.bind(
                settings.listener_host, settings.listen_port, tls_port=tls_port
            )
        except OSError as exc:
            app[keys.ALARM_RULES].start_failed("sip-listener", str(exc.strerror))
            raise StartupError(
                f"cannot listen for SIP on {settings.listener_host}:{settings.listen_port}"
                + (f" (TLS {tls_port})" if tls_port is not None else "")
                + f": {exc.strerror}"
            ) from exc
        app[keys.ALARM_RULES].started("sip-listener")
        app[keys.LISTENER_SOCKETS] = sockets
        yield
        sockets.close()  # the listener's servers close those they served; again is harmless

    async def command_path_ctx(app: web.Application) -> AsyncIterator[None]:
        shared_locks = None
        if settings.workers > 1:
            shared_locks = SharedPhoneLocks(settings.data_dir / "phone-locks")
        sender = app[keys.SENDER]
        lanes = Lanes(
            queue_limit=settings.phone_queue_limit,
            deadline=settings.command_deadline,
            shared_locks=shared_locks,
        )
        app[keys.LANES] = lanes
        app[keys.CONTROL] = CallControl(
            app[keys.STORE],
            planner=Planner(
                profiles=app[keys.PROFILES],
                access=app[keys.PHONE_ACCESS],
                scheme=settings.phone_http_scheme,
                port=settings.phone_http_port,
                reports_contact=_reports_contact(app, settings),
                reports_contact_tls=_reports_contact_tls(app, settings),
                outbound_proxy=settings.sip_outbound_proxy,
                sip_over_tls=settings.sip_tls_port is not None,
            ),
            # One lane per phone for both carriers: NOTIFYs and REST calls share the queue.
            lanes=lanes,
            journal=Journal(GroupCommit(app[keys.STORE]), observer=app[keys.TELEMETRY]),
            sip=sender,
            http=app[keys.PHONE_HTTP],
        )
        yield
        if shared_locks is not None:
            shared_locks.close()

    async def listener_ctx(app: web.Application) -> AsyncIterator[None]:
        listener, subscriptions = await _start_listener(app, settings)
        app[keys.LISTENER] = listener
        yield
        await listener.stop()
        if subscriptions is not None:
            await subscriptions.stop()

    async def housekeeping_ctx(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        background = [
            loop.create_task(_expire_registrations(app)),
            loop.create_task(_prune_command_log(app[keys.STORE], settings)),
            *(loop.create_task(pruner) for pruner in _pruners(app[keys.STORE], settings)),
            loop.create_task(_watch_rate_limit(app[keys.LISTENER], app[keys.ALARM_RULES])),
            loop.create_task(_watch_certificates(settings, app[keys.ALARM_RULES])),
        ]
        yield
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def webhooks_ctx(app: web.Application) -> AsyncIterator[None]:
        """The webhook outbox (api/webhook_delivery.py): one task, worker 0 only."""
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=settings.webhook_concurrency),
            auto_decompress=False,
        )
        deliverer = Deliverer(WebhookStore(app[keys.STORE]), settings, session)
        task = asyncio.get_running_loop().create_task(deliverer.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await deliverer.close()
        await session.close()

    async def telemetry_ctx(app: web.Application) -> AsyncIterator[None]:
        """What counts and watches the command path: alarms, KPIs, metrics (admin/)."""
        app[keys.KPI_COUNTERS] = CommandCounters()
        app[keys.METRICS] = Metrics()
        app[keys.TELEMETRY] = Telemetry(
            app[keys.KPI_COUNTERS], app[keys.METRICS], app[keys.ALARM_RULES]
        )
        yield

    async def events_ctx(app: web.Application) -> AsyncIterator[None]:
        """The live end of the event log for this worker's SSE clients (api/events.py)."""
        hub = EventHub(EventLog(app[keys.STORE]), queue_limit=settings.sse_queue_limit)
        hub.start()
        app[EVENT_HUB] = hub
        app[HEARTBEAT] = settings.sse_heartbeat
        yield
        await hub.stop()

    async def end_streams(app: web.Application) -> None:
        """Open SSE streams end before the server waits for its connections to close."""
        if EVENT_HUB in app:
            app[EVENT_HUB].closing = True

    app.on_shutdown.append(end_streams)

    async def kpi_ctx(app: web.Application) -> AsyncIterator[None]:
        """This worker's KPI recorder, once every part it samples exists; its last values are
        written when it stops."""
        counters = [kpi_probes.commands(app[keys.KPI_COUNTERS])]
        gauges = [kpi_probes.queue(app[keys.LANES])]
        if primary:
            counters += [
                kpi_probes.listener(app[keys.LISTENER].core.stats),
                kpi_probes.feed(app[keys.SIP_FEED].stats),
                kpi_probes.relay(app[keys.RELAY]),
            ]
            gauges.append(kpi_probes.registrations(app[keys.STORE]))
        app[keys.KPI_LOG] = KpiLog(app[keys.STORE])
        recorder = KpiRecorder(
            app[keys.KPI_LOG],
            worker=worker,
            length=settings.kpi_interval,
            keep=settings.kpi_history,
            counters=counters,
            gauges=gauges,
            listeners=[app[keys.METRICS].sampled],
        )
        recorder.open()
        app[keys.KPI_RECORDER] = recorder
        task = asyncio.get_running_loop().create_task(recorder.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def heartbeat_ctx(app: web.Application) -> AsyncIterator[None]:
        """Every worker's heartbeat (the device API's status sums them)."""
        task = asyncio.get_running_loop().create_task(_beat(app, worker))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(SipBridgeError):
            Heartbeats(app[keys.STORE]).forget(worker)

    app.cleanup_ctx.append(tracker_ctx)
    app.cleanup_ctx.append(alarms_ctx)
    app.cleanup_ctx.append(phone_ctx)
    app.cleanup_ctx.append(user_agent_ctx)
    if primary:
        app.cleanup_ctx.append(listener_sockets_ctx)
    app.cleanup_ctx.append(telemetry_ctx)
    app.cleanup_ctx.append(command_path_ctx)
    app.cleanup_ctx.append(async_commands_ctx)
    if primary:
        app.cleanup_ctx.append(listener_ctx)
        app.cleanup_ctx.append(housekeeping_ctx)
        app.cleanup_ctx.append(webhooks_ctx)
    app.cleanup_ctx.append(events_ctx)
    app.cleanup_ctx.append(kpi_ctx)
    app.cleanup_ctx.append(heartbeat_ctx)
    return app


ALARM_SYNC_EVERY = 5.0
RATE_LIMIT_SAMPLE_EVERY = 10.0
CERTIFICATE_CHECK_EVERY = 86_400.0


def _active_alarms(alarm_log: AlarmLog) -> dict[str, str]:
    try:
        return alarm_log.active_keys()
    except SipBridgeError as exc:
        log.error("could not read the active alarms: %s", exc.detail)
        return {}


async def _sync_alarms(alarm_log: AlarmLog, rules: AlarmRules) -> None:
    while True:
        await asyncio.sleep(ALARM_SYNC_EVERY)
        try:
            rules.sync(alarm_log.active_keys())
        except SipBridgeError as exc:
            log.error("could not read the active alarms: %s", exc.detail)


async def _watch_rate_limit(
    listener: SipListener, rules: AlarmRules, every: float = RATE_LIMIT_SAMPLE_EVERY
) -> None:
    """Worker 0's listener: what its rate limit dropped, sampled every `every` seconds."""
    stats = listener.core.stats
    seen = stats.rate_limited
    while True:
        await asyncio.sleep(every)
        now = stats.rate_limited
        rules.rate_limit_sample(now - seen, every)
        seen = now


async def _watch_certificates(
    settings: Settings, rules: AlarmRules, every: float = CERTIFICATE_CHECK_EVERY
) -> None:
    """The TLS certificates' expiry, at start and once a day."""
    files = {"tls_cert_file": settings.tls_cert_file}
    if settings.http_tls_cert_file is not None:
        files["http_tls_cert_file"] = settings.http_tls_cert_file
    while True:
        for setting, path in files.items():
            if path is None:
                continue
            try:
                expires = not_after(path)
            except StartupError as exc:
                log.error("%s: %s", setting, exc.detail)
                continue
            rules.certificate_checked(setting, expires, time.time())
        await asyncio.sleep(every)


async def _beat(app: web.Application, worker: int) -> None:
    """Write this worker's heartbeat now and every BEAT_EVERY seconds."""
    heartbeats = Heartbeats(app[keys.STORE])
    started = app[keys.STARTED_AT]
    while True:
        on_wire, waiting = app[keys.LANES].load()
        listener = app.get(keys.LISTENER)
        try:
            heartbeats.beat(
                WorkerBeat(
                    index=worker,
                    pid=os.getpid(),
                    started_at=started,
                    seen_at=time.time(),
                    in_flight=on_wire + waiting,
                    user_agent=app[keys.SENDER].local_contact,
                    listener=None
                    if listener is None
                    else f"{uri_host(listener.host)}:{listener.port}"
                    + (f" (tls {listener.tls_port})" if listener.tls_port else ""),
                )
            )
        except SipBridgeError as exc:
            log.warning("heartbeat not written: %s", exc.detail)
        await asyncio.sleep(BEAT_EVERY)


async def _start_listener(
    app: web.Application, settings: Settings
) -> tuple[SipListener, DialogSubscriptions | None]:
    """The SIP listener and what stands behind it: REGISTER, dialog and reg NOTIFYs, the relay."""
    store = app[keys.STORE]
    sockets = app[keys.LISTENER_SOCKETS]
    subscriptions = None
    if settings.subscribe_dialogs != "none":
        subscriptions = DialogSubscriptions(
            app[keys.SENDER],
            listener_host=settings.listener_contact_host,
            listener_port=lambda: sockets.port,
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
    # PBXs' ACTION-URI NOTIFYs take the same path as HTTP commands from here on.
    relay = ActionUriRelay(app[keys.CONTROL], deadline=settings.sip_relay_deadline)
    app[keys.SIP_FEED] = feed
    app[keys.RELAY] = relay
    core = ListenerCore(
        InboundRouter(feed, relay),
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
        sockets,
        tls=tls,
        connections=ConnectionLimits(
            max_total=settings.sip_tcp_max_connections,
            max_per_source=settings.sip_tcp_max_per_source,
        ),
        idle_timeout=settings.sip_tcp_idle_timeout,
    )
    await listener.start()
    if subscriptions is not None:
        for phone in store.phones():
            if settings.subscribe_dialogs == "all" or phone.learned_from != "http":
                subscriptions.phone_registered(phone)
        await subscriptions.start()
    return listener, subscriptions


def _reports_contact(app: web.Application, settings: Settings) -> str:
    """The Contact of every NOTIFY: worker 0's listener, which takes the phones' reports for
    every worker (workers > 1 need a fixed listen_port, config.py)."""
    sockets = app.get(keys.LISTENER_SOCKETS)
    port = sockets.port if sockets is not None else settings.listen_port
    return f"sip:sipbridge@{uri_host(settings.listener_contact_host)}:{port}"


def _reports_contact_tls(app: web.Application, settings: Settings) -> str | None:
    """The listener over TLS as the Contact of commands to TLS phones (worker 0's port)."""
    sockets = app.get(keys.LISTENER_SOCKETS)
    port = sockets.tls_port if sockets is not None else settings.listen_tls_port
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


async def _keep_pruning(
    what: str, prune: Callable[[int], int], *, every: float, batch: int = 1_000
) -> None:
    """Run `prune(at_most)` every `every` seconds, a short delete beside live traffic; a full
    batch means a backlog, worked off in further short batches."""
    pause = every
    while True:
        await asyncio.sleep(pause)
        try:
            gone = prune(batch)
        except SipBridgeError as exc:
            log.error("could not prune the %s: %s", what, exc.detail)
            gone = 0
        pause = 0.1 if gone >= batch else every


def _pruners(store: TrackerStore, settings: Settings) -> list[Coroutine[Any, Any, None]]:
    """The audit table (strangers add at most `sip_stranger_rate` rows a second), the event
    log, the Idempotency-Key records (api/idempotency.py RETENTION)."""
    events, records = EventLog(store), IdempotencyRecords(store)
    return [
        _keep_pruning(
            "audit table",
            lambda n: store.prune_audit(
                keep=settings.sip_audit_max_rows, max_age=settings.sip_audit_max_age, at_most=n
            ),
            every=10.0,
        ),
        _keep_pruning(
            "event log",
            lambda n: events.prune(
                max_age=settings.event_retention, max_rows=settings.event_max_rows, at_most=n
            ),
            every=10.0,
        ),
        _keep_pruning(
            "idempotency records", lambda _: records.prune(max_age=RETENTION), every=300.0
        ),
        _keep_pruning(
            "asynchronous commands",
            lambda _: AsyncCommands(store).prune(max_age=RETENTION),
            every=300.0,
        ),
    ]


async def _expire_registrations(app: web.Application, every: float = 30.0) -> None:
    """Registrations that ran out leave the tracker on their own, with their calls."""
    while True:
        await asyncio.sleep(every)
        try:
            gone = app[keys.STORE].purge_expired()
        except SipBridgeError as exc:
            log.error("could not purge expired registrations: %s", exc.detail)
            continue
        if keys.SIP_FEED in app:
            app[keys.SIP_FEED].stats.expired += len(gone)
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
