"""Diag.*: ping, DNS, NTP and traceroute from the phone (manual 000, UCS 6.4.0 only).

Every Diag command answers with data, so each is HTTP-only. Manual 000 opens them to the
Admin, Advanced User and User levels alike.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sipbridge.catalog._commands import CommandData, CommandSpec, NoData, Output
from sipbridge.catalog._fields import Host
from sipbridge.catalog._lines import MANUAL_000

# -- inputs -----------------------------------------------------------------------------------


class PingData(CommandData):
    Address: Host
    Count: int | None = Field(None, ge=1, le=100)
    Size: int | None = Field(None, ge=1, le=65500)


class DnsQueryData(CommandData):
    Address: Host


class NtpQueryData(CommandData):
    Server1: Host
    Server2: Host | None = None
    Server3: Host | None = None


class TracerouteData(CommandData):
    Address: Host
    Hops: int | None = Field(None, ge=1, le=64)
    Timeout: int | None = Field(None, ge=1, le=60)


# -- outputs ----------------------------------------------------------------------------------


class PingOut(Output):
    """At the top level, next to Status: the ping tool's lines."""

    ping: list[str] | None = None


class DnsInfoOut(Output):
    pass


class DnsQueryOut(Output):
    pass


class NtpInfoOut(Output):
    AddressInUse: str | None = None
    AddressSource: str | None = None
    TimeReceived: str | None = None
    TimeZone: str | None = None
    CurrentTime: str | None = None


class NtpQueryOut(Output):
    SNTPResults: list[Literal["OK", "Failed"]] | None = None


class TracerouteOut(Output):
    traceroute: list[str] | None = None


def _diag(
    name: str,
    manual: str,
    path: str,
    summary: str,
    output: type[Output],
    data: type[CommandData] = NoData,
) -> CommandSpec:
    return CommandSpec(
        name=name,
        command_uri="/api/v1/diag/" + path,
        data_model=data,
        summary=summary,
        manual_name=f"Diag.{manual}",
        group="Diag",
        http_method="GET" if data is NoData else "POST",
        delivery="http-only",
        availability=MANUAL_000,
        output_model=output,
    )


DIAG: tuple[CommandSpec, ...] = (
    _diag("ping", "Ping", "ping", "Ping a host from the phone.", PingOut, PingData),
    _diag("dnsInfo", "DNS", "dns/info", "DNS servers and the phone's DNS cache.", DnsInfoOut),
    _diag(
        "dnsQuery", "DNS", "dns/query", "Resolve a name on the phone.", DnsQueryOut, DnsQueryData
    ),
    _diag("ntpInfo", "NTP", "ntp/info", "The time server in use and the time.", NtpInfoOut),
    _diag(
        "ntpQuery", "NTP", "ntp/query", "Try up to three time servers.", NtpQueryOut, NtpQueryData
    ),
    _diag(
        "traceroute",
        "Traceroute",
        "traceroute",
        "Trace the path to a host.",
        TracerouteOut,
        TracerouteData,
    ),
)
