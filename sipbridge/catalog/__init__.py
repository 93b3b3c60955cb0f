"""The Poly REST command catalog: look a command up, validate its data, encode its body.

spec = lookup("/api/v1/callctrl/holdCall")
command = build(spec, {"Ref": call_id})     # InvalidInput names the bad field
body = encode(command)                      # the NOTIFY body; PayloadTooLarge over 20 KB
call = encode_http(command)                 # method, path, query and body for the phone's REST API

Every command of manuals 000-003: Management.*, Diag.*, WebCallControl.* (see `_lines.py` for
which firmware has which).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from sipbridge.catalog._commands import CommandData, CommandSpec, Delivery, Output
from sipbridge.catalog._diag import DIAG
from sipbridge.catalog._fields import CALL_ID_PATTERN, CallRef, Destination, Digits, LineNumber
from sipbridge.catalog._lines import LINES, Line, Version, format_version, parse_version
from sipbridge.catalog._management import MANAGEMENT
from sipbridge.catalog._webcallcontrol import WEB_CALL_CONTROL, call_status_query_problem
from sipbridge.errors import FieldProblem, InvalidInput, PayloadTooLarge

__all__ = [
    "ALL_COMMANDS",
    "CALL_ID_PATTERN",
    "LINES",
    "MAX_BODY_BYTES",
    "CallRef",
    "Command",
    "CommandData",
    "CommandSpec",
    "Delivery",
    "Destination",
    "Digits",
    "HttpCall",
    "Line",
    "LineNumber",
    "Output",
    "Version",
    "build",
    "call_status_query_problem",
    "encode",
    "encode_http",
    "format_version",
    "lookup",
    "parse_version",
    "problems_from_validation",
]

# Manual 002, prerequisites: the phone refuses more than 20 KB of REST data (HTTP 413 / 4009).
MAX_BODY_BYTES = 20 * 1024

ALL_COMMANDS: tuple[CommandSpec, ...] = WEB_CALL_CONTROL + MANAGEMENT + DIAG
_BY_URI: dict[str, CommandSpec] = {spec.command_uri: spec for spec in ALL_COMMANDS}
_BY_NAME: dict[str, CommandSpec] = {spec.name: spec for spec in ALL_COMMANDS}
assert len(_BY_URI) == len(_BY_NAME) == len(ALL_COMMANDS), "command names and URIs are unique"


@dataclass(frozen=True, kw_only=True)
class Command:
    """A validated command, ready to encode."""

    spec: CommandSpec
    data: BaseModel

    # Computed once at build: the command as the phone reads it (read it, do not change it).
    _json: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Manual 002, "Delivering REST API commands over SIP": one command per body.
        document = {
            "command-URI": self.spec.command_uri,
            "data": self.data.model_dump(by_alias=True, exclude_none=True, mode="json"),
        }
        object.__setattr__(self, "_json", document)  # frozen dataclass

    def as_json(self) -> dict[str, Any]:
        return self._json


def lookup(command: str) -> CommandSpec:
    """Find a command by command-URI (`/api/v1/callctrl/holdCall`) or name (`holdCall`)."""
    spec = _BY_URI.get(command) or _BY_NAME.get(command)
    if spec is None:
        raise InvalidInput.one("command_uri", f"{command!r} is not a command in the catalog")
    return spec


def problems_from_validation(exc: ValidationError, prefix: str = "") -> list[FieldProblem]:
    """Turn pydantic's errors into field problems with dotted paths."""
    problems = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"])
        field = f"{prefix}.{path}" if prefix and path else (prefix or path or "body")
        problems.append(FieldProblem(field=field, message=error["msg"]))
    return problems


def build(
    spec: CommandSpec,
    data: Mapping[str, Any] | Sequence[Any],
    *,
    field_prefix: str = "data",
) -> Command:
    """Validate `data` (Poly field names; a list for getConfig) against the command's model."""
    value: Any = dict(data) if isinstance(data, Mapping) else list(data)
    try:
        model = spec.data_model.model_validate(value)
    except ValidationError as exc:
        raise InvalidInput(problems_from_validation(exc, field_prefix)) from exc
    return Command(spec=spec, data=model)


def encode(command: Command) -> bytes:
    """The NOTIFY body; refuses what the phone would refuse as too large."""
    return _within_limit(command.as_json())


@dataclass(frozen=True, kw_only=True)
class HttpCall:
    """One command as a request to the phone's REST API (path relative to the phone)."""

    method: Literal["GET", "POST"]
    path: str
    query: dict[str, str]
    body: bytes | None


def encode_http(command: Command) -> HttpCall:
    """The same command for the phone's web server: GET queries carry their data in the query
    string (callStatus?line=1); anything else with data sends `{"data": ...}` as JSON."""
    data = command.as_json()["data"]
    spec = command.spec
    if spec.query:
        query = {key: str(value) for key, value in data.items()}
        return HttpCall(method=spec.http_method, path=spec.command_uri, query=query, body=None)
    body = _within_limit({"data": data}) if data else None
    if body is None and spec.http_method == "POST":
        body = b"{}"  # manuals 000/001: a POST must be application/json, even without input
    return HttpCall(method=spec.http_method, path=spec.command_uri, query={}, body=body)


def _within_limit(document: dict[str, Any]) -> bytes:
    # Compact UTF-8 JSON, written by pydantic's serializer (a fraction of json.dumps's cost).
    body = to_json(document)
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"the command body would be {len(body)} bytes; Poly phones accept {MAX_BODY_BYTES}"
        )
    return body
