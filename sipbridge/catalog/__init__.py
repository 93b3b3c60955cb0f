"""The Poly REST command catalog: look a command up, validate its data, encode its body.

spec = lookup("/api/v1/callctrl/holdCall")
command = build(spec, {"Ref": call_id})     # InvalidInput names the bad field
body = encode(command)                      # the NOTIFY body; PayloadTooLarge over 20 KB
call = encode_http(command, "ucs-6")       # method, path, query and body for the phone's REST API
fits_line(command, "ucs-6")                 # InvalidInput where the line's limits refuse it

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
from sipbridge.catalog._management import AUDIO_KEYS, MANAGEMENT, KeySet, key_refused
from sipbridge.catalog._webcallcontrol import WEB_CALL_CONTROL, call_status_query_problem
from sipbridge.errors import FieldProblem, InvalidInput, PayloadTooLarge

__all__ = [
    "ALL_COMMANDS",
    "AUDIO_KEYS",
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
    "KeySet",
    "Line",
    "LineNumber",
    "Output",
    "Version",
    "build",
    "call_status_query_problem",
    "encode",
    "encode_http",
    "fits_line",
    "format_version",
    "key_refused",
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


def fits_line(command: Command, line: Line | None) -> None:
    """Refuse what the line's firmware would refuse by count: getConfig / setConfig take at
    most 20 parameters on UCS 5.8, 6.4.0 and Trio UCS 5.9.2 (manuals 001, 000, 003: 4009)."""
    limit = command.spec.item_limit.get(line) if line else None
    if limit is None:
        return
    count = len(command.as_json()["data"])
    if count > limit:
        raise InvalidInput.one(
            "data",
            f"{command.spec.name} takes at most {limit} parameters on {line} firmware "
            f"(the phone answers 4009 past that); this request has {count}: split it",
        )


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


def encode_http(command: Command, line: Line | None = None) -> HttpCall:
    """The same command for the phone's web server: GET queries carry their data in the query
    string (callStatus?line=1); anything else with data sends `{"data": ...}` as JSON. The
    method is the one the manual of the phone's firmware line gives (sipStatus: GET on UCS 5/6,
    POST on PVOS)."""
    data = command.as_json()["data"]
    spec = command.spec
    method = spec.method_on(line)
    if spec.query:
        query = {key: str(value) for key, value in data.items()}
        return HttpCall(method=method, path=spec.command_uri, query=query, body=None)
    body = _within_limit({"data": data}) if data else None
    if body is None and method == "POST":
        body = b"{}"  # manuals 000/001: a POST must be application/json, even without input
    return HttpCall(method=method, path=spec.command_uri, query={}, body=body)


def _within_limit(document: dict[str, Any]) -> bytes:
    # Compact UTF-8 JSON, written by pydantic's serializer (a fraction of json.dumps's cost).
    body = to_json(document)
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"the command body would be {len(body)} bytes; Poly phones accept {MAX_BODY_BYTES}"
        )
    return body
