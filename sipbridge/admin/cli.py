"""`sipbridge users …` and `sipbridge keys …`: device-API users and front-API keys, written
straight to the tracker database (a running service sees them on its next request; keys
within `identity.KEY_CACHE_SECONDS`). Passwords are read without echo, or from stdin with
`--password-stdin`; they are never printed or logged. A new key is printed once, alone on the
last line of the output, so `sipbridge keys add crm --level monitor | tail -1` captures it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from sipbridge.config import Settings
from sipbridge.errors import InvalidInput, SipBridgeError
from sipbridge.levels import Level
from sipbridge.tracker import TrackerStore
from sipbridge.tracker.credentials import MIN_PASSWORD_LENGTH, Credentials

LEVELS = [level.cli_name for level in Level]

SettingsLoader = Callable[[Path | None], Settings]


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


@contextmanager
def _credentials(settings: Settings) -> Iterator[Credentials]:
    """The tracker database's credentials; sipbridge's errors said in one line."""
    try:
        store = TrackerStore(settings.database_path)
    except SipBridgeError as exc:
        raise click.ClickException(exc.detail) from exc
    try:
        yield Credentials(store)
    except InvalidInput as exc:
        raise click.ClickException("; ".join(p.message for p in exc.problems)) from exc
    except SipBridgeError as exc:
        raise click.ClickException(exc.detail) from exc
    finally:
        store.close()


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise click.ClickException("--password-stdin: nothing on standard input")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise click.ClickException("no terminal to ask for the password on: use --password-stdin")
    password: str = click.prompt(
        f"Password (at least {MIN_PASSWORD_LENGTH} characters)",
        hide_input=True,
        confirmation_prompt=True,
    )
    return password


def _level(_: click.Context, __: click.Parameter, value: str) -> Level:
    try:
        return Level.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


password_stdin = click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
level_option = click.option(
    "--level",
    required=True,
    type=click.Choice(LEVELS, case_sensitive=False),
    callback=_level,
    help="Privilege level (manual 004): monitor < administrator < security-administrator.",
)


def commands(load: SettingsLoader, config_option: Callable[[Any], Any]) -> list[click.Command]:
    """The `users` and `keys` groups, reading the settings with `load`."""

    @click.group()
    def users() -> None:
        """Device-API users (HTTP Basic on /api/v1) and their levels."""

    @users.command("add")
    @click.argument("name")
    @level_option
    @password_stdin
    @config_option
    def users_add(
        name: str, level: Level, password_stdin: bool, config_file: Path | None
    ) -> None:
        """Add a user."""
        with _credentials(load(config_file)) as credentials:
            credentials.add_user(name, level, _password(password_stdin))
        click.echo(f"user {name} added ({level.title})")

    @users.command("list")
    @config_option
    def users_list(config_file: Path | None) -> None:
        """List the users: name, level, last change."""
        with _credentials(load(config_file)) as credentials:
            for user in credentials.users():
                click.echo(f"{user.name}\t{user.level.cli_name}\tchanged {_when(user.updated_at)}")

    @users.command("remove")
    @click.argument("name")
    @config_option
    def users_remove(name: str, config_file: Path | None) -> None:
        """Remove a user (effective on the service's next request)."""
        with _credentials(load(config_file)) as credentials:
            credentials.remove_user(name)
        click.echo(f"user {name} removed")

    @users.command("passwd")
    @click.argument("name")
    @password_stdin
    @config_option
    def users_passwd(name: str, password_stdin: bool, config_file: Path | None) -> None:
        """Set a user's password."""
        with _credentials(load(config_file)) as credentials:
            if credentials.password_record(name) is None:
                raise click.ClickException(f"no user {name!r}")
            credentials.set_password(name, _password(password_stdin))
        click.echo(f"password of {name} changed")

    @users.command("set-level")
    @click.argument("name")
    @click.argument("level", type=click.Choice(LEVELS, case_sensitive=False), callback=_level)
    @config_option
    def users_set_level(name: str, level: Level, config_file: Path | None) -> None:
        """Change a user's level."""
        with _credentials(load(config_file)) as credentials:
            credentials.set_level(name, level)
        click.echo(f"user {name} is now {level.title}")

    @click.group()
    def keys() -> None:
        """Front-API keys (Bearer on /v1 and /metrics) and their levels."""

    @keys.command("add")
    @click.argument("name")
    @level_option
    @config_option
    def keys_add(name: str, level: Level, config_file: Path | None) -> None:
        """Make a key; it is printed once, alone on the last line (only its hash is kept)."""
        with _credentials(load(config_file)) as credentials:
            key = credentials.add_key(name, level)
        click.echo(f"key {name} added ({level.title}); it is shown only now:")
        click.echo(key)

    @keys.command("list")
    @config_option
    def keys_list(config_file: Path | None) -> None:
        """List the stored keys: name, level, created (never the key)."""
        with _credentials(load(config_file)) as credentials:
            for key in credentials.api_keys():
                click.echo(f"{key.name}\t{key.level.cli_name}\tcreated {_when(key.created_at)}")

    @keys.command("remove")
    @click.argument("name")
    @config_option
    def keys_remove(name: str, config_file: Path | None) -> None:
        """Remove a key."""
        with _credentials(load(config_file)) as credentials:
            credentials.remove_key(name)
        click.echo(f"key {name} removed")

    return [users, keys]
