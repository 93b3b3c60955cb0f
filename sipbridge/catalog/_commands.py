"""What the catalog knows about one Poly REST command, and the base models of its data.

Each command is a `CommandSpec`: its command-URI, HTTP method, the pydantic model its `data` must
satisfy, the model of what it returns (where the manual shows one), the firmware lines that have
it, and whether it can travel inside a SIP NOTIFY. Pure data; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict

from sipbridge.catalog._lines import ALL_MANUALS, Availability, Line, describe, documented_in

Delivery = Literal["any", "sip-only", "http-only"]
"""any: NOTIFY or HTTP. sip-only: warmTransfer (manual 002). http-only: the answer carries data,
and a NOTIFY's answer is a bare SIP status, so over SIP the data would be lost."""

Group = Literal["Management", "Diag", "WebCallControl"]
HttpMethod = Literal["GET", "POST"]


class CommandData(BaseModel):
    """Base of every command's `data`: frozen, unknown fields refused, Poly's names on the wire."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class NoData(CommandData):
    """The manual lists no input for the command."""


class Output(BaseModel):
    """Base of what a command returns: the fields the manual shows; a phone may add more."""

    model_config = ConfigDict(frozen=True, extra="allow")


@dataclass(frozen=True, kw_only=True)
class CommandSpec:
    """One Poly REST command as the catalog knows it."""

    name: str
    command_uri: str
    data_model: type[BaseModel]  # a CommandData, or a RootModel where `data` is a list or map
    summary: str
    manual_name: str  # the manual's heading, e.g. "Management.DeviceInfo Version 2"
    group: Group = "WebCallControl"
    http_method: HttpMethod = "POST"
    # Where a manual for one line gives another method (sipStatus, webSignIn: GET in 000/001).
    http_method_on: Mapping[Line, HttpMethod] = field(default_factory=dict)
    delivery: Delivery = "any"
    # A NOTIFY is this command's road in `auto`: manual 002 shows REST over SIP for call
    # control (`/api/v1/callctrl/...`); anything else goes over SIP only when asked for, where
    # the phone's profile says its firmware takes it (profile `management_over_sip_since`).
    notify_in_auto: bool = False
    # False: never in a SIP message sent in clear (UDP/TCP); only over TLS (setConfig can carry
    # passwords, e.g. reg.1.password).
    clear_sip: bool = True
    # Most entries the command's list / map may hold, per line (getConfig / setConfig: 20).
    item_limit: Mapping[Line, int] = field(default_factory=dict)
    availability: Availability = field(default_factory=lambda: documented_in(*ALL_MANUALS))
    output_model: type[BaseModel] | None = None
    query: bool = False  # a GET whose data travels as the query string
    note: str = ""

    def method_on(self, line: Line | None) -> HttpMethod:
        """The HTTP method the phone's firmware line expects (the newest manual's by default)."""
        return self.http_method_on.get(line, self.http_method) if line else self.http_method

    @property
    def sip_only(self) -> bool:
        return self.delivery == "sip-only"

    @property
    def http_only(self) -> bool:
        return self.delivery == "http-only"

    @property
    def firmware(self) -> str:
        return describe(self.availability)
