"""RFC 3263 resolution at the edge, and the sender that never lets pjsip resolve a name.

pjsip resolves a host name with a blocking `getaddrinfo` in the thread that drives it, which is
the event loop: one contact on a name whose DNS does not answer froze every phone's commands.
So sipbridge resolves a contact itself, asynchronously (dnspython's `dns.asyncresolver`: TTLs
and NAPTR / SRV, which `getaddrinfo` in a thread pool gives neither of), checks the address
against `phone_networks`, and hands pjsip a Request-URI whose host is that address.

Answers are cached for their TTL (bounded LRU); "no such name" and "no answer in time" are
cached for a short while, so a dead name costs one timeout, not one per command. Names in
/etc/hosts (read once, at start) win over DNS, as for the system resolver (`localhost`): such a
name is never looked up in DNS at all, not even for NAPTR / SRV (hosts(5) has neither).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver

from sipbridge.errors import ContactNotAllowed, ContactResolutionTimeout, ContactUnresolvable
from sipbridge.sip import rfc3263
from sipbridge.sip.action_uri import OutgoingRequest, SipAnswer
from sipbridge.sip.networks import PhoneNetworks
from sipbridge.sip.rfc3263 import Naptr, Srv, Target
from sipbridge.sip.sender import NotifySender
from sipbridge.sip.uri import SipParseError, SipUri, parse_uri, uri_host

log = logging.getLogger(__name__)

NEGATIVE_TTL = 30.0  # seconds a "no such name" / "no records" answer is kept (RFC 2308 cap)
TIMEOUT_TTL = 5.0  # seconds a name whose DNS did not answer fails at once
MAX_TTL = 3600.0  # a longer TTL is cut to this: a phone that moves is found within the hour


class _Failure(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind  # "nxdomain" | "servfail" | "timeout"
        self.detail = detail


@dataclass(frozen=True)
class _Entry:
    expires_at: float
    records: tuple[object, ...] | None  # None: the failure below
    failure: _Failure | None = None


def parse_hosts(text: str) -> dict[str, tuple[str, ...]]:
    """/etc/hosts (hosts(5)): name -> addresses, in file order."""
    table: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2 or rfc3263.ip_literal(fields[0]) is None:
            continue
        address = rfc3263.ip_literal(fields[0]) or fields[0]
        for name in fields[1:]:
            table.setdefault(name.lower().rstrip("."), []).append(address)
    return {name: tuple(addresses) for name, addresses in table.items()}


def parse_nameserver(text: str) -> tuple[str, int]:
    """`192.0.2.53`, `192.0.2.53:5353`, `[2001:db8::53]:53` or `2001:db8::53`."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 53
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    else:
        host, port = text, 53
    if rfc3263.ip_literal(host) is None or not 0 < port < 65536:
        raise ValueError(f"not a nameserver address: {text!r}")
    return host, port


class Resolver(Protocol):
    """Turns a SIP URI into the targets a request for it may go to, in RFC 3263 order."""

    async def targets(self, uri: SipUri) -> tuple[Target, ...]: ...


class ContactResolver:
    """Resolves SIP URIs to targets (RFC 3263) with dnspython, a TTL cache and /etc/hosts."""

    def __init__(
        self,
        *,
        nameservers: Iterable[str] = (),
        timeout: float = 2.0,
        cache_size: int = 4096,
        hosts: Mapping[str, tuple[str, ...]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        servers = [parse_nameserver(s) for s in nameservers]
        # configure=True reads /etc/resolv.conf (once, here, at start).
        self._dns = dns.asyncresolver.Resolver(configure=not servers)
        if servers:
            self._dns.nameservers = [
                dns.nameserver.Do53Nameserver(host, port) for host, port in servers
            ]
        self._dns.lifetime = timeout
        # Each server's share of the budget, so a dead first server leaves time for the next.
        self._dns.timeout = max(0.2, timeout / max(1, len(self._dns.nameservers)))
        self.timeout = timeout
        self._hosts = dict(hosts) if hosts is not None else _system_hosts()
        self._cache: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._cache_size = cache_size
        self._clock = clock

    @property
    def cached(self) -> int:
        """Answers (and failures) held in the cache."""
        return len(self._cache)

    async def resolve(self, uri: SipUri) -> Target:
        """The first target for `uri`; ContactUnresolvable / ContactResolutionTimeout if none."""
        return (await self.targets(uri))[0]

    async def targets(self, uri: SipUri) -> tuple[Target, ...]:
        """Every target for `uri`, in the order RFC 3263 §4.3 tries them: the SRV records of
        the transport chosen (priority, then weight), each of their addresses, no repeats.
        ContactUnresolvable / ContactResolutionTimeout if there is none."""
        try:
            step = rfc3263.plan(uri)
        except rfc3263.UnresolvableUri as exc:
            raise ContactUnresolvable(f"cannot resolve {uri}: {exc}") from exc
        if isinstance(step, rfc3263.Numeric):
            return (step.target,)  # the usual contact: no lookup, no timer
        until = self._clock() + self.timeout
        try:
            # dnspython's own lifetime ends each query within the budget (and closes its
            # socket); this is the backstop for the walk as a whole.
            async with asyncio.timeout(self.timeout + 0.5):
                targets = await self._walk(step, until)
        except _Failure as exc:
            raise _translate(exc, uri) from None
        except TimeoutError:
            raise _translate(_timeout(str(uri), self.timeout), uri) from None
        if not targets:
            raise ContactUnresolvable(f"{uri.host} has no address records")
        return tuple(dict.fromkeys(targets))

    async def _walk(self, step: rfc3263.Plan, until: float) -> list[Target]:
        if isinstance(step, rfc3263.Numeric):
            return [step.target]
        if isinstance(step, rfc3263.AddressLookup):
            return [
                Target(address=a, port=step.port, transport=step.transport)
                for a in await self._addresses(step.name, until)
            ]
        if step.name in self._hosts:
            # /etc/hosts holds no NAPTR or SRV: RFC 3263 §4.2's last step, at once, without DNS.
            return [replace(step.fallback, address=a) for a in self._hosts[step.name]]
        naptr: list[Naptr] = []
        if step.naptr:
            found = await self._query(step.name, "NAPTR", until, absent_ok=True)
            naptr = [_naptr(r) for r in found]
        for srv_name, transport in rfc3263.srv_names(step, naptr):
            found = await self._query(srv_name, "SRV", until, absent_ok=True)
            records = [_srv(r) for r in found]
            targets: list[Target] = []
            for record in rfc3263.srv_order(records):
                try:
                    addresses = await self._addresses(
                        record.target.rstrip("."), until, absent_ok=True
                    )
                except _Failure as exc:
                    if not targets:
                        raise
                    # The targets found so far stand; only the fallbacks behind them are lost.
                    log.info("SRV target %s of %s skipped: %s", record.target, srv_name, exc)
                    continue
                targets += [
                    Target(address=a, port=record.port, transport=transport) for a in addresses
                ]
            if targets:
                return targets
        addresses = await self._addresses(step.name, until)
        return [replace(step.fallback, address=a) for a in addresses]

    async def _addresses(self, name: str, until: float, *, absent_ok: bool = False) -> list[str]:
        """A and AAAA at once, IPv4 first (pjsip's default account sends over IPv4,
        PJSUA2_NOTES); one of them failing is no failure if the other has addresses."""
        known = self._hosts.get(name.lower())
        if known:
            return list(known)
        answers = await asyncio.gather(
            self._query(name, "A", until, absent_ok=True),
            self._query(name, "AAAA", until, absent_ok=True),
            return_exceptions=True,
        )
        found: list[str] = []
        failures: list[_Failure] = []
        for answer in answers:
            if isinstance(answer, _Failure):
                failures.append(answer)
            elif isinstance(answer, BaseException):
                raise answer
            else:
                found += [str(r) for r in answer]
        if not found and failures:
            raise failures[0]
        if not found and not absent_ok:
            raise _Failure("nxdomain", f"{name} has no A or AAAA records")
        return found

    async def _query(
        self, name: str, rdtype: str, until: float, *, absent_ok: bool
    ) -> tuple[object, ...]:
        key = (name.lower(), rdtype)
        now = self._clock()
        entry = self._cache.get(key)
        if entry is not None and entry.expires_at > now:
            self._cache.move_to_end(key)
        else:
            entry = await self._ask(name, rdtype, now, until)
            self._remember(key, entry)
        if entry.failure is not None:
            if entry.failure.kind == "nxdomain" and absent_ok:
                return ()
            raise entry.failure
        return entry.records or ()

    async def _ask(self, name: str, rdtype: str, now: float, until: float) -> _Entry:
        if until <= now:
            return _Entry(expires_at=now, records=None, failure=_timeout(name, self.timeout))
        try:
            answer = await self._dns.resolve(
                name + ".", rdtype, raise_on_no_answer=False, search=False, lifetime=until - now
            )
        except dns.resolver.NXDOMAIN:
            return _Entry(expires_at=now + NEGATIVE_TTL, records=())
        except dns.exception.Timeout:
            failure = _timeout(name, self.timeout)
            return _Entry(expires_at=now + TIMEOUT_TTL, records=None, failure=failure)
        except dns.resolver.NoNameservers as exc:  # SERVFAIL / REFUSED from every server
            failure = _Failure("servfail", f"{name}: {exc}")
            return _Entry(expires_at=now + TIMEOUT_TTL, records=None, failure=failure)
        except dns.exception.DNSException as exc:
            failure = _Failure("nxdomain", f"{name}: {exc}")
            return _Entry(expires_at=now + NEGATIVE_TTL, records=None, failure=failure)
        if answer.rrset is None:
            return _Entry(expires_at=now + NEGATIVE_TTL, records=())
        ttl = min(float(answer.rrset.ttl), MAX_TTL)
        return _Entry(expires_at=now + ttl, records=tuple(answer.rrset))

    def _remember(self, key: tuple[str, str], entry: _Entry) -> None:
        self._cache[key] = entry
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


class ResolvingSender:
    """A `NotifySender` that hands pjsip an address, never a name, inside `phone_networks`.

    The request's next hop (the outbound proxy if there is one, else the Request-URI) is
    resolved here. For the phone's own contact the resolved address replaces the host in the
    Request-URI (`sip:1001@10.0.0.5:5060;transport=tcp`): the phone sees what a phone that
    registered with an IP contact always sees. A route set to the address (the URI left as it
    was) would need one pjsua account per address, and pjsua aborts the process past 8.
    With an outbound proxy the phone's URI is still resolved and held to phone_networks (the
    proxy would resolve the same name), but left as it is; the proxy's own name is resolved
    for pjsip and not held to phone_networks (it is the operator's).

    A hop given by name over TLS carries the name on (`OutgoingRequest.tls_name`): the
    certificate must name it, not the address (RFC 5922 §7).

    Failover (RFC 3263 §4.3): when a target cannot be reached at all (the answer says
    `transport_failed`: refused, reset, TLS failed, the socket refused the send), the same
    request goes to the next target, as a new transaction, while less than `failover_within`
    seconds have passed since the first attempt. That bound is command_deadline less Timer F,
    so the last attempt, itself bounded by Timer F, ends within the command's deadline. A
    timeout is no reason to try another target: over UDP the request may have arrived, and a
    command must not be carried out twice.
    """

    def __init__(
        self,
        inner: NotifySender,
        resolver: Resolver,
        networks: PhoneNetworks,
        *,
        failover_within: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._resolver = resolver
        self._networks = networks
        self._failover_within = failover_within
        self._clock = clock

    @property
    def local_contact(self) -> str:
        return self._inner.local_contact

    def start(self) -> None:
        self._inner.start()

    def stop(self) -> None:
        self._inner.stop()

    async def send(self, request: OutgoingRequest) -> SipAnswer:
        attempts = await self.plan(request)
        started = self._clock()
        tried: list[str] = []
        for index, attempt in enumerate(attempts):
            answer = await self._inner.send(attempt)
            last = index == len(attempts) - 1
            if not answer.transport_failed or last:
                break
            if self._clock() - started >= self._failover_within:
                log.info("no time left to try the next target after: %s", answer.reason)
                break
            tried.append(answer.reason)
            log.info("%s: %s; trying the next target", _hop(attempt), answer.reason)
        if tried and answer.transport_failed:
            # Every target failed: say so, with each one's reason (the last one's first).
            answer = replace(answer, reason="; ".join([answer.reason, *tried]))
        return answer

    async def prepare(self, request: OutgoingRequest) -> OutgoingRequest:
        """The request as it may leave to its first target: names resolved, address checked."""
        return (await self.plan(request))[0]

    async def plan(self, request: OutgoingRequest) -> tuple[OutgoingRequest, ...]:
        """The request once per target it may go to, in order (at least one); names resolved,
        the phone's addresses held to phone_networks (ContactNotAllowed if none is inside)."""
        try:
            uri = parse_uri(request.target_uri)
        except SipParseError as exc:
            raise ContactUnresolvable(f"not a SIP URI: {exc.reason}") from exc
        targets = await self._resolver.targets(uri)
        allowed = [t for t in targets if self._networks.allows(t.address)]
        if not allowed:
            raise ContactNotAllowed(
                f"{uri.host} resolves to {targets[0].address}, outside phone_networks "
                f"({self._networks.describe()}); nothing was sent"
            )
        if request.proxy is not None:
            # The proxy routes by the Request-URI, which stays the phone's own (RFC 3261
            # §16.6); only the hop to the proxy is handed to pjsip as an address.
            proxy = parse_uri(request.proxy)
            hops = await self._resolver.targets(proxy)
            name = _name_for_tls(proxy)
            return tuple(
                replace(
                    request,
                    proxy=_with_target(proxy, hop, lr=True),
                    tls_name=name if hop.transport == "tls" else None,
                )
                for hop in hops
            )
        if rfc3263.ip_literal(uri.host) is not None:
            return (request,)  # already an address: the request leaves unchanged
        name = _name_for_tls(uri)
        return tuple(
            replace(
                request,
                target_uri=_with_target(uri, target, lr=False),
                tls_name=name if target.transport == "tls" else None,
            )
            for target in allowed
        )


def _name_for_tls(uri: SipUri) -> str | None:
    """The host a TLS certificate must name: the URI's own (RFC 5922 §4.1, not an SRV
    target's), or None for an address."""
    if rfc3263.ip_literal(uri.host) is not None:
        return None
    return rfc3263.bare_host(uri.host).rstrip(".")


def _hop(request: OutgoingRequest) -> str:
    return request.proxy or request.target_uri


def _with_target(uri: SipUri, target: Target, *, lr: bool) -> str:
    """`uri` with `target`'s address, port and transport; other parameters kept."""
    params = [(n, v) for n, v in uri.params if n.lower() not in ("transport", "maddr")]
    implied = "tls" if uri.scheme.lower() == "sips" else "udp"  # without `transport`
    if target.transport != implied:
        params.append(("transport", target.transport))
    if lr and not any(n.lower() == "lr" for n, _ in params):
        params.append(("lr", None))
    rewritten = replace(
        uri, host=uri_host(target.address), port=target.port, params=tuple(params), headers=()
    )
    return str(rewritten)


def _naptr(record: object) -> Naptr:
    return Naptr(
        order=int(record.order),  # type: ignore[attr-defined]
        preference=int(record.preference),  # type: ignore[attr-defined]
        flags=record.flags.decode(),  # type: ignore[attr-defined]
        service=record.service.decode(),  # type: ignore[attr-defined]
        replacement=str(record.replacement),  # type: ignore[attr-defined]
    )


def _srv(record: object) -> Srv:
    return Srv(
        priority=int(record.priority),  # type: ignore[attr-defined]
        weight=int(record.weight),  # type: ignore[attr-defined]
        port=int(record.port),  # type: ignore[attr-defined]
        target=str(record.target),  # type: ignore[attr-defined]
    )


def _timeout(name: str, seconds: float) -> _Failure:
    return _Failure("timeout", f"DNS gave no answer for {name} within {seconds:g} s")


def _translate(
    failure: _Failure, uri: SipUri
) -> ContactUnresolvable | ContactResolutionTimeout:
    if failure.kind == "timeout":
        return ContactResolutionTimeout(f"{failure.detail}; nothing was sent to {uri}")
    return ContactUnresolvable(f"cannot resolve {uri}: {failure.detail}; nothing was sent")


def _system_hosts(path: Path = Path("/etc/hosts")) -> dict[str, tuple[str, ...]]:
    try:
        return parse_hosts(path.read_text())
    except OSError:
        return {}
