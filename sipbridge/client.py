"""`sipbridge hold CALL_ID` and friends: the front API from a shell, against a running service.

The URL is `SIPBRIDGE_URL`, else the settings' `http_host` / `http_port` (loopback for a wildcard
host, https with `http_tls`); the key is `SIPBRIDGE_KEY`, else the first of `api_keys`, else the
`api-key` file in `data_dir`. Output is aligned `name: value` lines for people, the JSON as the
service sent it with `--json`. The exit status is 0 on success; otherwise 1 with the problem's
title and detail (2 when the service cannot be reached).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import click

from sipbridge.config import Settings

ACTIONS = ("hold", "resume", "end", "answer", "reject", "ignore", "mute", "unmute")

SettingsLoader = Callable[[Path | None], Settings]


def base_url(settings: Settings) -> str:
    if url := os.environ.get("SIPBRIDGE_URL"):
        return url.rstrip("/")
    host = settings.http_host
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if settings.http_tls else "http"
    return f"{scheme}://{host}:{settings.http_port}"


def api_key(settings: Settings) -> str:
    if key := os.environ.get("SIPBRIDGE_KEY"):
        return key
    if settings.api_keys:
        return settings.api_keys[0]
    path = settings.data_dir / "api-key"
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise click.ClickException(
            f"no API key: set SIPBRIDGE_KEY, api_keys, or make {path} readable ({exc.strerror})"
        ) from exc


def _show(body: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    if not isinstance(body, dict):
        click.echo(str(body))
        return
    width = max((len(str(k)) for k in body), default=0)
    for name, value in body.items():
        shown = json.dumps(value) if isinstance(value, dict | list) else value
        click.echo(f"{name + ':':<{width + 1}} {'-' if value is None else shown}")


async def _post(url: str, key: str, body: dict[str, Any] | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=65)
        ) as response,
    ):
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except json.JSONDecodeError:
            return response.status, {"title": response.reason or "", "detail": text[:500]}


def _call(url: str, key: str, body: dict[str, Any] | None, as_json: bool) -> None:
    try:
        status, answer = asyncio.run(_post(url, key, body))
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        click.echo(f"error: cannot reach sipbridge at {url}: {exc}", err=True)
        sys.exit(2)
    if status >= 400:
        if as_json:
            click.echo(json.dumps(answer, indent=2))
        title = answer.get("title", "") if isinstance(answer, dict) else ""
        detail = answer.get("detail", "") if isinstance(answer, dict) else str(answer)
        click.echo(f"error: {status} {title}: {detail}", err=True)
        sys.exit(1)
    _show(answer, as_json)


async def _events(url: str, key: str, follow: bool, as_json: bool) -> None:
    """Print events as they come; without `follow`, stop once the backlog is read (1 s quiet)."""
    headers = {"Authorization": f"Bearer {key}"}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None if follow else 1.0)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url, headers=headers) as response,
    ):
        if response.status >= 400:
            answer = await response.json(content_type=None)
            click.echo(f"error: {response.status} {answer.get('title')}: {answer.get('detail')}",
                       err=True)  # fmt: skip
            sys.exit(1)
        fields: dict[str, str] = {}
        try:
            async for raw in response.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith(":"):
                    continue
                if line:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                    continue
                if "data" in fields:
                    event = json.loads(fields["data"])
                    if as_json:
                        click.echo(json.dumps(event))
                    else:
                        click.echo(
                            f"{event.get('id', '-'):>8}  {fields.get('event', '-'):<22} "
                            f"{event.get('phone') or '-':<10} {event.get('call_id') or '-'}"
                        )
                fields = {}
        except TimeoutError:
            return


def commands(load: SettingsLoader, config_option: Callable[[Any], Any]) -> list[click.Command]:
    """The client commands, reading the settings with `load`."""
    as_json = click.option("--json", "as_json", is_flag=True, help="The JSON as sent.")
    made: list[click.Command] = []

    def action(name: str) -> click.Command:
        @click.command(name=name, help=f"{name.capitalize()} a call (POST /v1/calls/ID/{name}).")
        @click.argument("call_id")
        @click.option("--force", is_flag=True, help="Past the state guard.")
        @as_json
        @config_option
        def run(call_id: str, force: bool, as_json: bool, config_file: Path | None) -> None:
            settings = load(config_file)
            query = "?force=true" if force else ""
            url = f"{base_url(settings)}/v1/calls/{quote(call_id, safe='')}/{name}{query}"
            _call(url, api_key(settings), None, as_json)

        return run

    made += [action(name) for name in ACTIONS]

    def action_with(name: str, field: str, summary: str) -> click.Command:
        """An action whose body is one field, given as the second argument."""

        @click.command(name=name, help=summary)
        @click.argument("call_id")
        @click.argument(field)
        @as_json
        @config_option
        def run(call_id: str, as_json: bool, config_file: Path | None, **given: str) -> None:
            settings = load(config_file)
            url = f"{base_url(settings)}/v1/calls/{quote(call_id, safe='')}/{name}"
            _call(url, api_key(settings), {field: given[field]}, as_json)

        return run

    transfer = action_with("transfer", "destination", "Blind-transfer a call to DESTINATION.")
    dtmf = action_with("dtmf", "digits", "Send DTMF DIGITS on a call.")

    @click.command()
    @click.argument("phone")
    @click.argument("command_uri")
    @click.argument("data", required=False, default="{}")
    @as_json
    @config_option
    def send(
        phone: str, command_uri: str, data: str, as_json: bool, config_file: Path | None
    ) -> None:
        """Send one catalog command (COMMAND_URI, JSON DATA) to PHONE."""
        try:
            parsed = json.loads(data)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc.msg}", param_hint="DATA") from exc
        settings = load(config_file)
        url = f"{base_url(settings)}/v1/phones/{quote(phone, safe='')}/commands"
        _call(url, api_key(settings), {"command_uri": command_uri, "data": parsed}, as_json)

    @click.command()
    @click.option("--follow", is_flag=True, help="Keep printing events as they happen.")
    @click.option("--type", "types", multiple=True, help="Only this event type (repeatable).")
    @click.option("--phone", default=None)
    @click.option("--call-id", default=None)
    @click.option("--since", type=click.IntRange(0), default=None, help="Events after this id.")
    @as_json
    @config_option
    def events(
        follow: bool,
        types: tuple[str, ...],
        phone: str | None,
        call_id: str | None,
        since: int | None,
        as_json: bool,
        config_file: Path | None,
    ) -> None:
        """Print events (GET /v1/events): the backlog after --since, and with --follow, live."""
        settings = load(config_file)
        query: dict[str, str] = {}
        if types:
            query["types"] = ",".join(types)
        if phone:
            query["phone"] = phone
        if call_id:
            query["call_id"] = call_id
        if since is not None:
            query["last_event_id"] = str(since)
        url = f"{base_url(settings)}/v1/events" + (f"?{urlencode(query)}" if query else "")
        try:
            asyncio.run(_events(url, api_key(settings), follow, as_json))
        except (aiohttp.ClientError, OSError) as exc:
            click.echo(f"error: cannot reach sipbridge at {url}: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            pass

    return [*made, transfer, dtmf, send, events]
