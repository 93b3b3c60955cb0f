"""Locating a SIP server (RFC 3263 §4), sans-I/O: what to look up for a URI, and in what order.

    numeric host              no lookup: the URI's port (default 5060 / 5061) and transport
    name with a port          A / AAAA of the name (§4.2); transport from `;transport=`, else
                              UDP for sip:, TLS for sips: (§4.1)
    name, `;transport=`, no port   SRV for that transport (§4.2), then A / AAAA at the default port
    name, neither             NAPTR (§4.1) -> SRV of the replacements it names; without NAPTR,
                              SRV for each transport we speak; without SRV, A / AAAA, UDP 5060
                              (sips: TLS 5061)

`sips:` only ever resolves to TLS (§4.1, RFC 5630). The edge (`sipbridge.sip.resolver`) runs the
queries this module names and hands the answers back to it; nothing here touches the network.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from sipbridge.sip.uri import SipUri

WireTransport = str  # "udp" | "tcp" | "tls"
TRANSPORTS: tuple[WireTransport, ...] = ("tls", "tcp", "udp")
DEFAULT_PORT = {"udp": 5060, "tcp": 5060, "tls": 5061}
# RFC 3263 §4.1 (and RFC 3261 §26.2 registrations): NAPTR services per transport.
NAPTR_SERVICES = {"SIPS+D2T": "tls", "SIP+D2T": "tcp", "SIP+D2U": "udp"}
_SRV_PREFIX = {"tls": "_sips._tcp.", "tcp": "_sip._tcp.", "udp": "_sip._udp."}


class UnresolvableUri(ValueError):
    """The URI names a transport sipbridge cannot speak, or a host that is not a name."""


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where one request goes: an IP address (no brackets), a port and a transport."""

    address: str
    port: int
    transport: WireTransport


@dataclass(frozen=True, kw_only=True)
class Numeric:
    """The host is an IP literal: nothing to look up."""

    target: Target


@dataclass(frozen=True, kw_only=True)
class AddressLookup:
    """Look up A / AAAA records of `name`, then send to `port` over `transport`."""

    name: str
    port: int
    transport: WireTransport


@dataclass(frozen=True, kw_only=True)
class ServiceLookup:
    """Look up NAPTR (if `naptr`), then SRV, then A / AAAA of `name`."""

    name: str
    transports: tuple[WireTransport, ...]  # what the URI allows, in our order of preference
    naptr: bool
    fallback: Target  # address left empty: the A / AAAA of `name` fills it


Plan = Numeric | AddressLookup | ServiceLookup


@dataclass(frozen=True, kw_only=True)
class Naptr:
    order: int
    preference: int
    flags: str
    service: str
    replacement: str


@dataclass(frozen=True, kw_only=True)
class Srv:
    priority: int
    weight: int
    port: int
    target: str


def bare_host(host: str) -> str:
    """The host without IPv6 brackets (RFC 5118 §4), lower-cased (hostnames are case-blind)."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host.lower()


@functools.lru_cache(maxsize=8192)
def ip_literal(host: str) -> str | None:
    """The host as an IP address text if it is one, else None."""
    try:
        return str(ipaddress.ip_address(bare_host(host)))
    except ValueError:
        return None


@functools.lru_cache(maxsize=8192)  # every command to a phone plans the same contact
def plan(uri: SipUri) -> Plan:
    """What to look up to reach `uri` (RFC 3263 §4.1 transport, §4.2 port and address)."""
    secure = uri.scheme.lower() == "sips"
    wanted = uri.transport
    if wanted is not None and wanted not in DEFAULT_PORT:
        raise UnresolvableUri(f"transport {wanted!r} is not one sipbridge speaks (udp, tcp, tls)")
    if secure and wanted == "udp":
        raise UnresolvableUri("a sips: URI cannot travel over UDP (RFC 3261 §26.2.2)")
    transport: WireTransport | None = "tls" if secure else wanted
    address = ip_literal(uri.host)
    if address is not None:
        chosen = transport or "udp"
        return Numeric(
            target=Target(address=address, port=uri.port or DEFAULT_PORT[chosen], transport=chosen)
        )
    name = bare_host(uri.host).rstrip(".")
    if not name:
        raise UnresolvableUri("the URI has no host")
    if uri.port is not None:
        return AddressLookup(name=name, port=uri.port, transport=transport or "udp")
    if transport is not None:
        return ServiceLookup(
            name=name,
            transports=(transport,),
            naptr=False,
            fallback=Target(address="", port=DEFAULT_PORT[transport], transport=transport),
        )
    return ServiceLookup(
        name=name,
        transports=TRANSPORTS,
        naptr=True,
        fallback=Target(address="", port=DEFAULT_PORT["udp"], transport="udp"),
    )


def srv_names(lookup: ServiceLookup, naptr: list[Naptr]) -> list[tuple[str, WireTransport]]:
    """The SRV names to query, in order, with the transport each stands for.

    RFC 3263 §4.1: NAPTR records with flag "s" and a SIP service we speak (and the URI allows),
    by order then preference (RFC 3403 §4.1); without any, `_sips._tcp`, `_sip._tcp`,
    `_sip._udp` of the name for each transport the URI allows.
    """
    usable = sorted(
        (
            record
            for record in naptr
            if record.flags.lower() == "s"
            and NAPTR_SERVICES.get(record.service.upper()) in lookup.transports
        ),
        key=lambda record: (record.order, record.preference),
    )
    if usable:
        return [
            (record.replacement.rstrip("."), NAPTR_SERVICES[record.service.upper()])
            for record in usable
        ]
    return [(_SRV_PREFIX[t] + lookup.name, t) for t in lookup.transports]


def srv_order(records: list[Srv]) -> list[Srv]:
    """SRV targets by priority, then by weight, heaviest first (RFC 2782).

    RFC 2782 asks for a weighted random pick among equal priorities; the order here is
    deterministic (each phone's contact names one phone, so there is no load to spread). A
    target of "." means the service is not offered there.
    """
    return sorted(
        (r for r in records if r.target.rstrip(".")),
        key=lambda r: (r.priority, -r.weight),
    )
