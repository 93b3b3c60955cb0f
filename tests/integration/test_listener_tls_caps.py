"""TLS handshakes to the listener count against the connection caps from accept, on real sockets.

asyncio's `ssl=` server handed a connection over (and so counted it) only after its handshake:
1,000 connections from one source that never handshake were all held open, none counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

import pytest

from sipbridge.sip.access import (
    Allowlist,
    ConnectionLimits,
    RateLimiter,
    TokenBucket,
    parse_networks,
)
from sipbridge.sip.listener import ListenerCore, ListenerSockets, SipListener
from sipbridge.sip.message import SipResponse, StreamParser
from sipbridge.tls import server_context
from sipbridge.tracker import TrackerStore
from sipbridge.tracker.sip_feed import SipFeed
from tests.certs import make_authority

pytestmark = pytest.mark.integration

PER_SOURCE = 32
HALF_OPEN = 1000
HANDSHAKE_TIMEOUT = 3.0  # longer than opening HALF_OPEN connections takes here


@pytest.fixture
async def tls_listener(tmp_path):
    ca = make_authority(tmp_path / "pki")
    leaf = ca.issue("listener")
    store = TrackerStore(tmp_path / "t.sqlite3")
    core = ListenerCore(
        SipFeed(store, None),
        allowlist=Allowlist(parse_networks(["127.0.0.0/8"])),
        rate_limiter=RateLimiter(time.monotonic, rate=1000, burst=1000),
        audit=store.audit,
        stranger_budget=TokenBucket(time.monotonic, rate=5, burst=10),
    )
    listener = SipListener(
        core,
        ListenerSockets.bind("127.0.0.1", 0, tls_port=0),
        tls=server_context(leaf.cert_file, leaf.key_file, names="cert/key"),
        connections=ConnectionLimits(max_total=4096, max_per_source=PER_SOURCE),
        handshake_timeout=HANDSHAKE_TIMEOUT,
    )
    await listener.start()
    client = ssl.create_default_context(cafile=str(ca.cert_file))
    try:
        yield listener, client
    finally:
        await listener.stop()
        store.close()


async def _closed_by_peer(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(65536), within) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


async def _options_over_tls(port: int, client: ssl.SSLContext, host: str) -> int:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client, local_addr=(host, 0), server_hostname="127.0.0.1"
    )
    local = writer.get_extra_info("sockname")[1]
    writer.write(
        (
            "OPTIONS sip:sipbridge@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/TLS {host}:{local};branch=z9hG4bK-caps-{local}\r\n"
            f"From: <sip:probe@{host}>;tag=p\r\nTo: <sip:sipbridge@127.0.0.1>\r\n"
            f"Call-ID: caps-{local}@{host}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
    )
    parser = StreamParser(max_buffer=65536)
    try:
        async with asyncio.timeout(3):
            while (answer := parser.next_message()) is None:
                parser.feed(await reader.read(65536))
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
    assert isinstance(answer, SipResponse)
    return answer.status


async def test_half_open_tls_handshakes_from_one_source_are_held_to_its_cap(tls_listener):
    listener, client = tls_listener
    port = listener.tls_port
    assert port is not None
    connections = []
    try:
        for _ in range(HALF_OPEN):  # TCP connects, never a ClientHello
            connections.append(await asyncio.open_connection("127.0.0.1", port))
        await asyncio.sleep(0.2)
        # Counted from accept: never more than the cap open, the rest closed at once.
        assert listener.open_connections == PER_SOURCE
        closed = await asyncio.gather(*(_closed_by_peer(r, within=0.5) for r, _ in connections))
        assert closed.count(False) == PER_SOURCE
        assert listener.core.stats.connections_refused == HALF_OPEN - PER_SOURCE
        # Another source is not shut out by them, and its handshake completes.
        assert await _options_over_tls(port, client, "127.0.0.3") == 200
        # The admitted half-open ones are closed once the handshake bound passes.
        started = time.monotonic()
        still_open = [r for (r, _), done in zip(connections, closed, strict=True) if not done]
        ended = await asyncio.gather(
            *(_closed_by_peer(r, within=HANDSHAKE_TIMEOUT + 1) for r in still_open)
        )
        assert all(ended)
        assert time.monotonic() - started <= HANDSHAKE_TIMEOUT + 2
        await asyncio.sleep(0.1)
        assert listener.open_connections == 0
        assert listener.core.stats.handshakes_failed == PER_SOURCE
        # The source may connect again, and a real handshake is served.
        assert await _options_over_tls(port, client, "127.0.0.1") == 200
    finally:
        for _, writer in connections:
            writer.close()


async def test_plain_sip_on_the_tls_port_is_closed_unanswered(tls_listener):
    listener, _ = tls_listener
    assert listener.tls_port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.tls_port)
    try:
        writer.write(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n")
        data = await asyncio.wait_for(reader.read(65536), 3.0)
        assert not data.startswith(b"SIP/2.0")  # at most a TLS alert, never a SIP answer
        assert await _closed_by_peer(reader, within=3.0) or data == b""
    finally:
        writer.close()
    await asyncio.sleep(0.1)
    assert listener.open_connections == 0
