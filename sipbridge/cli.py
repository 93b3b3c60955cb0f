"""The `sipbridge` command: serve, demo, phones, calls, users, keys, openapi, catalog,
profiles."""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
import signal
import ssl
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from aiohttp import ClientSession, web
from pydantic import ValidationError

from sipbridge.admin import metrics
from sipbridge.admin.cli import commands as admin_commands
from sipbridge.api import create_app, keys
from sipbridge.api.openapi import build_openapi
from sipbridge.client import commands as client_commands
from sipbridge.config import ConfigFileError, Settings, load_settings
from sipbridge.errors import SipBridgeError
from sipbridge.sim import SimPhone, SimPhoneServer
from sipbridge.tls import server_context
from sipbridge.tracker import TrackerStore
from sipbridge.workers import WorkerPool, die_with_parent

log = logging.getLogger("sipbridge")

DEMO_API_KEY = "demo-key-change-me"

config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="TOML settings file (SIPBRIDGE_* variables override it).",
)


def _settings(config_file: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config_file, **{k: v for k, v in overrides.items() if v is not None})
    except ConfigFileError as exc:
        raise click.ClickException(str(exc)) from exc
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise click.ClickException("invalid settings:\n" + "\n".join(lines)) from exc
    except ValueError as exc:  # e.g. a TOML syntax error
        raise click.ClickException(f"cannot read the settings: {exc}") from exc


def _logging(settings: Settings, worker: int = 0) -> None:
    name = f"[worker {worker}] %(name)s" if settings.workers > 1 else "%(name)s"
    logging.basicConfig(
        level=settings.log_level,
        format=f"%(asctime)s %(levelname)-7s {name}: %(message)s",
        stream=sys.stderr,
    )


@click.group()
@click.version_option(package_name="sipbridge")
def main() -> None:
    """Control calls on Poly phones by SIP Call-ID."""


@main.command()
@config_option
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Processes serving the API (default: the workers setting, 1).",
)
@click.option("--worker-index", type=click.IntRange(1, 63), default=None, hidden=True)
def serve(config_file: Path | None, workers: int | None, worker_index: int | None) -> None:
    """Run the gateway: HTTP API and SIP user agent."""
    settings = _settings(config_file, workers=workers)
    if worker_index is not None:  # started by worker 0 (workers.py)
        die_with_parent()
    _logging(settings, worker_index or 0)
    if settings.workers > 1:
        # Every worker's Prometheus values in files that any worker's /metrics sums; worker 0
        # empties the directory before it starts the others (they inherit the environment).
        metrics.enable_multiprocess(settings.data_dir / "prometheus", fresh=worker_index is None)
    asyncio.run(_serve(settings, demo_phones=0, worker=worker_index or 0, config_file=config_file))


@main.command()
@config_option
@click.option("--phones", default=2, show_default=True, type=click.IntRange(1, 50))
def demo(config_file: Path | None, phones: int) -> None:
    """Run the gateway with simulated phones, each holding a call, and print curl lines."""
    overrides: dict[str, Any] = {}
    settings = _settings(config_file)
    if not settings.api_keys:
        overrides["api_keys"] = (DEMO_API_KEY,)
    overrides["workers"] = 1  # the simulated phones live in this one process
    if "data_dir" not in settings.model_fields_set:
        overrides["data_dir"] = Path(tempfile.mkdtemp(prefix="sipbridge-demo-"))
    settings = settings.model_copy(update=overrides)
    _logging(settings)
    asyncio.run(_serve(settings, demo_phones=phones))


async def _serve(
    settings: Settings, *, demo_phones: int, worker: int = 0, config_file: Path | None = None
) -> None:
    try:
        app = create_app(settings, worker=worker)
    except SipBridgeError as exc:  # e.g. an api-key file others can read
        raise click.ClickException(exc.detail) from exc
    runner = web.AppRunner(app, access_log=None)
    try:
        https = _https_context(settings)
        await runner.setup()
    except SipBridgeError as exc:  # a port in use, a bad address: said without a traceback
        await runner.cleanup()
        raise click.ClickException(exc.detail) from exc
    # aiohttp's default listen backlog (128) overflows when clients open hundreds of connections
    # at once; the dropped handshakes then cost seconds of retries (docs/performance.md).
    site = web.TCPSite(
        runner,
        settings.http_host,
        settings.http_port,
        backlog=1024,
        reuse_port=settings.workers > 1,  # every worker accepts on the same port
        ssl_context=https,
    )
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise click.ClickException(
            f"cannot listen on {settings.http_host}:{settings.http_port}: {exc.strerror}"
        ) from exc
    scheme = "https" if https is not None else "http"
    log.info("HTTP API on %s://%s:%d/v1", scheme, settings.http_host, settings.http_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    servers: list[SimPhoneServer] = []
    pool = None
    if worker == 0 and settings.workers > 1:
        rules = app[keys.ALARM_RULES]
        pool = WorkerPool(
            settings.workers,
            config_file=config_file,
            on_unexpected_exit=rules.worker_exited,
            on_settled=rules.worker_settled,
            on_process_end=metrics.worker_exited,
        )
        await pool.start()
    try:
        if demo_phones:
            servers = await _start_demo(settings, demo_phones)
        await stop.wait()
        log.info("shutting down")
    finally:
        if pool is not None:
            await pool.stop()
        for server in servers:
            await server.stop()
        await runner.cleanup()


def _https_context(settings: Settings) -> ssl.SSLContext | None:
    """HTTPS on the front API (http_tls): the same checked files as the SIP side's TLS."""
    files = settings.http_tls_files if settings.http_tls else None
    if files is None:
        return None
    names = (
        "http_tls_cert_file/http_tls_key_file"
        if settings.http_tls_cert_file is not None
        else "tls_cert_file/tls_key_file"
    )
    return server_context(*files, names=names)


async def _start_demo(settings: Settings, count: int) -> list[SimPhoneServer]:
    base = f"http://{settings.http_host}:{settings.http_port}"
    key = settings.api_keys[0]
    headers = {"Authorization": f"Bearer {key}"}
    servers = []
    async with ClientSession(base, headers=headers) as http:
        for index in range(count):
            extension = str(1001 + index)
            server = SimPhoneServer(
                SimPhone(extension, host=settings.sip_host), host=settings.sip_host
            )
            await server.start()
            servers.append(server)
            call = server.phone.add_call(
                state="connected", remote=f"sip:{2001 + index}@example.net"
            )
            ua = "PolyEdge-E450-UA/8.3.0.0123 (simulated)"
            for path, body in (
                (f"/v1/phones/{extension}", {"contact": server.contact, "user_agent": ua}),
                (f"/v1/calls/{call.call_id}", {"phone": extension, "state": "connected"}),
            ):
                async with http.put(path, json=body) as response:
                    response.raise_for_status()
            log.info(
                "simulated phone %s on %s holds call %s", extension, server.contact, call.call_id
            )
    first = servers[0]
    call_id = next(iter(first.phone.calls))
    auth = shlex.quote(f"Authorization: Bearer {key}")
    print(
        f"""
sipbridge demo is running: {count} simulated phones, each holding one call.
Try (in another terminal):

  curl -s -H {auth} {base}/v1/calls
  curl -s -X POST -H {auth} {base}/v1/calls/{call_id}/hold
  curl -s -X POST -H {auth} {base}/v1/calls/{call_id}/resume
  curl -s -X POST -H {auth} -H 'Content-Type: application/json' \\
       -d '{{"digits": "123#"}}' {base}/v1/calls/{call_id}/dtmf
  curl -s -H {auth} {base}/v1/calls/{call_id}

Press Ctrl-C to stop.
""",
        flush=True,
    )
    return servers


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


@main.command()
@config_option
def phones(config_file: Path | None) -> None:
    """List the registered phones in the tracker database."""
    store = TrackerStore(_settings(config_file).database_path)
    for phone in store.phones():
        click.echo(
            f"{phone.id}\t{phone.contact}\t{phone.transport}\tuntil {_when(phone.registered_until)}"
            f"\t{phone.user_agent or '-'}"
        )


@main.command()
@config_option
def calls(config_file: Path | None) -> None:
    """List the tracked calls in the tracker database."""
    store = TrackerStore(_settings(config_file).database_path)
    for call in store.calls():
        click.echo(f"{call.call_id}\t{call.phone_id}\t{call.state}\tsince {_when(call.first_seen)}")


@main.command()
def openapi() -> None:
    """Print the OpenAPI document of the front API."""
    click.echo(json.dumps(build_openapi(), indent=2))


@main.command(name="catalog")
@click.option("--json", "as_json", is_flag=True, help="The same list as GET /v1/catalog.")
def catalog_command(as_json: bool) -> None:
    """List every Poly REST command sipbridge knows: method, path, transport, firmware."""
    from sipbridge import catalog
    from sipbridge.api.schemas import CatalogOut

    if as_json:
        click.echo(CatalogOut.of(catalog.ALL_COMMANDS).model_dump_json(indent=2))
        return
    for spec in catalog.ALL_COMMANDS:
        click.echo(
            f"{spec.name:22} {spec.http_method:4} {spec.command_uri:44} {spec.delivery:9} "
            f"{spec.firmware}"
        )


@main.command(name="profiles")
@config_option
def profiles_command(config_file: Path | None) -> None:
    """List the sip profiles (sip_profiles_dir): what each phone family can do."""
    from sipbridge.catalog import format_version
    from sipbridge.phone.profiles import load_profiles

    settings = _settings(config_file)
    try:
        book = load_profiles(settings.sip_profiles_dir)
    except SipBridgeError as exc:
        raise click.ClickException(exc.detail) from exc
    for profile in book.profiles:
        sip = profile.rest_over_sip_since
        digest = profile.digest_since
        click.echo(
            f"{profile.name:14} {profile.title:40} "
            f"REST over SIP: {format_version(sip) + '+' if sip else 'no':8} "
            f"auth: {'/'.join(profile.http_auth) or 'none'}"
            + (f", digest+sessions from {format_version(digest)}" if digest else "")
            + ("" if profile.rest_api else "  (no REST API)")
        )


for _command in (
    *admin_commands(_settings, config_option),
    *client_commands(_settings, config_option),
):
    main.add_command(_command)
