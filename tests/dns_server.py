"""A tiny authoritative DNS server on loopback for tests (dnspython's message API, asyncio UDP).

`records` maps (name, type) to (ttl, [rdata text]); other names get NXDOMAIN. `silent=True`
reads every query and never answers: the DNS that froze pjsip's blocking getaddrinfo.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class DnsServer(asyncio.DatagramProtocol):
    def __init__(
        self,
        records: dict[tuple[str, str], tuple[int, list[str]]] | None = None,
        *,
        silent: bool = False,
    ) -> None:
        self.records = {
            (name.lower().rstrip("."), rdtype.upper()): value
            for (name, rdtype), value in (records or {}).items()
        }
        self.silent = silent
        self.queries: Counter[tuple[str, str]] = Counter()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return
        question = query.question[0]
        name = question.name.to_text().lower().rstrip(".")
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries[(name, rdtype)] += 1
        if self.silent:
            return
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        found = self.records.get((name, rdtype))
        if found is not None:
            ttl, values = found
            response.answer.append(
                dns.rrset.from_text_list(question.name, ttl, dns.rdataclass.IN, rdtype, values)
            )
        elif not any(n == name for n, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)

    @property
    def address(self) -> str:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return f"{host}:{port}"

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def start_dns(
    records: dict[tuple[str, str], tuple[int, list[str]]] | None = None,
    *,
    silent: bool = False,
    host: str = "127.0.0.1",
    port: int = 0,
) -> DnsServer:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(
        lambda: DnsServer(records, silent=silent), local_addr=(host, port)
    )
    return protocol
