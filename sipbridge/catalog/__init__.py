"""The Poly REST command catalog: look a command up, validate its data, encode its body.

spec = lookup("/api/v1/callctrl/holdCall")
command = build(spec, {"Ref": call_id})     # InvalidInput names the bad field
body = encode(command)                      # PayloadTooLarge over 20 KB
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from sipbridge.catalog._commands import CALL_CONTROL, CommandData, CommandSpec
from sipbridge.errors import FieldProblem, InvalidInput, PayloadTooLarge

__all__ = [
    "ALL_COMMANDS",
    "MAX_BODY_BYTES",
    "Command",
    "CommandData",
    "CommandSpec",
    "build",
    "encode",
    "lookup",
    "problems_from_validation",
]

# Manual 002, prerequisites: the phone refuses more than 20 KB of REST data (HTTP 413 / 4009).
MAX_BODY_BYTES = 20 * 1024

ALL_COMMANDS: tuple[CommandSpec, ...] = CALL_CONTROL
_BY_URI: dict[str, CommandSpec] = {spec.command_uri: spec for spec in ALL_COMMANDS}
_BY_NAME: dict[str, CommandSpec] = {spec.name: spec for spec in ALL_COMMANDS}


@dataclass(frozen=True, kw_only=True)
class Command:
    """A validated command, ready to encode."""

    spec: CommandSpec
    data: CommandData

    def as_json(self) -> dict[str, Any]:
        # Manual 002, "Delivering REST API commands over SIP": one command per body.
        return {
            "command-URI": self.spec.command_uri,
            "data": self.data.model_dump(by_alias=True, exclude_none=True, mode="json"),
        }


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


def build(spec: CommandSpec, data: Mapping[str, Any], *, field_prefix: str = "data") -> Command:
    """Validate `data` (Poly field names) against the command's model."""
    try:
        model = spec.data_model.model_validate(dict(data))
    except ValidationError as exc:
        raise InvalidInput(problems_from_validation(exc, field_prefix)) from exc
    return Command(spec=spec, data=model)


def encode(command: Command) -> bytes:
    """The JSON body as sent to the phone; refuses what the phone would refuse as too large."""
    body = json.dumps(command.as_json(), separators=(",", ":"), ensure_ascii=False).encode()
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"the command body would be {len(body)} bytes; Poly phones accept {MAX_BODY_BYTES}"
        )
    return body
