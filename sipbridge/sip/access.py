"""Who may talk to the listener, and how fast (sans-I/O; the clock is passed in).

The listener changes the tracker, so only known networks may reach it (a CIDR allowlist, default
loopback), and one source cannot flood it (a token bucket per source address). Strangers share one
budget (`TokenBucket`): their source addresses may be spoofed, so per-source state for them would
only be memory an attacker fills. Stream connections are counted per source and in total
(`ConnectionLimits`). Every table here is bounded.
"""

from __future__ import annotations

import ipaddress
import math
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

    def retry_after(self, source: str) -> int:
        """Whole seconds until `source` has a token again (a Retry-After value, RFC 3261 §20.33)."""
        bucket = self._buckets.get(source)
        if bucket is None:
            return 1
        missing = max(0.0, 1.0 - bucket.tokens)
        return max(1, math.ceil(missing / self._rate))

    def __len__(self) -> int:
        """Sources tracked now: at most `max_sources`."""
        return len(self._buckets)


class TokenBucket:
    """One shared budget: `rate` a second, bursts up to `burst`."""

    def __init__(self, clock: Callable[[], float], *, rate: float, burst: int) -> None:
        self._clock = clock
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._updated = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + max(0.0, now - self._updated) * self._rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class ConnectionLimits:
    """Open stream connections, per source host and in total; `open` refuses beyond either cap.

    Per host, not per host and port: one machine opening many connections is what the cap is for.
    Phones behind one NAT share a host, so the per-source cap must leave room for them.
    """

    def __init__(self, *, max_total: int, max_per_source: int) -> None:
        self.max_total = max_total
        self.max_per_source = max_per_source
        self._open: dict[str, int] = {}
        self._total = 0

    def open(self, host: str) -> str | None:
        """Count a new connection from `host`; None when admitted, else why it is refused."""
        if self._total >= self.max_total:
            return f"{self.max_total} connections open in total"
        count = self._open.get(host, 0)
        if count >= self.max_per_source:
            return f"{count} connections open from {host}"
        self._open[host] = count + 1
        self._total += 1
        return None

    def close(self, host: str) -> None:
        count = self._open.get(host, 0)
        if count <= 0:
            return
        self._total -= 1
        if count == 1:
            del self._open[host]  # entries only for hosts with open connections: bounded
        else:
            self._open[host] = count - 1

    @property
    def total(self) -> int:
        return self._total

    def __len__(self) -> int:
        """Hosts with open connections: at most `max_total`."""
        return len(self._open)
