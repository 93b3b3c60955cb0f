"""Where phones may be (`phone_networks`), sans-I/O: a contact's address inside them or refused.

A contact comes from an API key holder (`PUT /v1/phones`) or from anyone the listener admits (a
REGISTER): without this check it could point sipbridge's NOTIFYs, and the phone's REST password,
at any host. The check runs where a contact enters (an IP literal is refused at once; a name
cannot be judged yet) and again on the address a name resolved to, before anything is sent.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from sipbridge.sip.access import Allowlist, Network, parse_networks
from sipbridge.sip.rfc3263 import bare_host, ip_literal
from sipbridge.sip.uri import SipParseError, parse_uri

# Loopback, RFC 1918 private IPv4, RFC 6598 shared (carrier-grade NAT) space, RFC 4193 unique
# local IPv6 and IPv6 loopback: where desk phones sit in a company network. Link-local, public
# and documentation ranges are out; a hosted deployment lists its customers' networks.
DEFAULT_PHONE_NETWORKS: tuple[str, ...] = (
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "::1/128",
    "fc00::/7",
)


class PhoneNetworks:
    """The networks a phone's contact (and its REST URL) may resolve to."""

    def __init__(self, networks: Iterable[Network]) -> None:
        self.networks = tuple(networks)
        self._allowlist = Allowlist(self.networks)
        # Checked on every command: the same few thousand phone addresses, asked again and again.
        self._allows = functools.lru_cache(maxsize=8192)(self._allowlist.allows)

    @classmethod
    def parse(cls, cidrs: Iterable[str]) -> PhoneNetworks:
        return cls(parse_networks(cidrs))

    def allows(self, address: str) -> bool:
        """True if the IP address `address` lies in one of the networks (IPv4-mapped too)."""
        return self._allows(bare_host(address))

    def why_not_host(self, host: str) -> str | None:
        """Why `host` (an IP literal) is refused; None if allowed or a name (judged later)."""
        address = ip_literal(host)
        if address is None or self.allows(address):
            return None
        return f"{address} is outside phone_networks ({self.describe()})"

    def why_not_contact(self, contact: str) -> str | None:
        """Why the SIP contact URI is refused now; None if allowed or its host is a name."""
        try:
            uri = parse_uri(contact)
        except SipParseError:
            return None  # the URI's own validation reports this
        return self.why_not_host(uri.host)

    def describe(self) -> str:
        return ", ".join(str(n) for n in self.networks)
