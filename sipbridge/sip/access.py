"""Who may talk to the listener, and how fast (sans-I/O; the clock is passed in).

The listener changes the tracker, so only known networks may reach it (a CIDR allowlist, default
loopback), and one source cannot flood it (a token bucket per source address).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """`10.0.0.0/8`, `192.0.2.7` (a host) or `::1`; raises ValueError naming a bad entry."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"not a network: {cidr!r}") from exc
    return tuple(networks)


class Allowlist:
    def __init__(self, networks: Iterable[Network]) -> None:
        self._networks = tuple(networks)

    def allows(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per source host: `rate` requests a second, bursts up to `burst`."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        rate: float,
        burst: int,
        max_sources: int = 10_000,
    ) -> None:
        self._clock = clock
        self._rate = rate
        self._burst = float(burst)
        self._max_sources = max_sources
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, source: str) -> bool:
        now = self._clock()
        bucket = self._buckets.get(source)
        if bucket is None:
            if len(self._buckets) >= self._max_sources:
                self._buckets.popitem(last=False)  # bounded memory: forget the stalest source
            bucket = _Bucket(tokens=self._burst, updated=now)
            self._buckets[source] = bucket
        else:
            self._buckets.move_to_end(source)
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False
