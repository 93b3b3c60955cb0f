"""The listener under abuse, on real loopback sockets, real SQLite and the real app (issue #14 item 5).

A "stranger" on loopback: `sip_allow` is 127.0.0.1/32 and the client binds 127.0.0.2.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import pytest

from sipbridge.api import keys
from sipbridge.sip.message import SipResponse, StreamParser

ONLY_ONE = ("127.0.0.1/32",)
STRANGER_HOST = "127.0.0.2"


def listener_port(client) -> int:
    return int(client.server.app[keys.LISTENER].port)


def options(n: int, host: str = "127.0.0.1", transport: str = "UDP") -> bytes:
    return (
        f"OPTIONS sip:sipbridge@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {host}:5999;branch=z9hG4bK-abuse-{n}\r\n"
        f"From: <sip:probe@{host}>;tag=p{n}\r\n"
        "To: <sip:sipbridge@127.0.0.1>\r\n"
        f"Call-ID: abuse-{n}@{host}\r\n"
        f"CSeq: {n + 1} OPTIONS\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def udp_from(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


async def count_datagrams(sock: socket.socket, quiet: float = 0.5) -> list[bytes]:
    """Everything that arrives until `quiet` seconds pass without a datagram."""
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    while True:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65535), quiet)
        except TimeoutError:
            return got
        got.append(data)


async def connect_from(host: str, port: int):
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(host, 0))


async def closed_by_peer(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(65536), within) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


async def responses(reader: asyncio.StreamReader, count: int, within: float) -> list[SipResponse]:
    parser = StreamParser(max_buffer=1 << 20)
    out: list[SipResponse] = []
    deadline = time.monotonic() + within
    while len(out) < count and time.monotonic() < deadline:
        try:
            chunk = await asyncio.wait_for(reader.read(65536), deadline - time.monotonic())
        except (TimeoutError, ConnectionError):
            break
        if not chunk:
            break
        parser.feed(chunk)
        while (message := parser.next_message()) is not None:
            assert isinstance(message, SipResponse)
            out.append(message)
    return out


async def test_udp_stranger_flood_is_dropped_and_audited_within_the_budget(gateway_factory):
    client = await gateway_factory(
        subscribe_dialogs="none", sip_allow=ONLY_ONE, sip_stranger_rate=5, sip_stranger_burst=10
    )
    port = listener_port(client)
    store = client.server.app[keys.STORE]
    with udp_from(STRANGER_HOST) as sock:
        started = time.monotonic()
        for n in range(300):
            sock.sendto(options(n, STRANGER_HOST), ("127.0.0.1", port))
        answers = await count_datagrams(sock)
        elapsed = time.monotonic() - started
    assert answers == []
    budget = 10 + 5 * elapsed
    assert 1 <= store.audit_count() <= budget


async def test_udp_stranger_answers_are_bounded_when_answering_is_on(gateway_factory):
    client = await gateway_factory(
        subscribe_dialogs="none",
        sip_allow=ONLY_ONE,
        sip_stranger_udp="answer",
        sip_stranger_rate=5,
        sip_stranger_burst=10,
    )
    port = listener_port(client)
    store = client.server.app[keys.STORE]
    with udp_from(STRANGER_HOST) as sock:
        started = time.monotonic()
        for n in range(300):
            sock.sendto(options(n, STRANGER_HOST), ("127.0.0.1", port))
        answers = await count_datagrams(sock)
        elapsed = time.monotonic() - started
    budget = 10 + 5 * elapsed
    assert 1 <= len(answers) <= budget
    assert all(a.startswith(b"SIP/2.0 403 ") for a in answers)
    assert store.audit_count() <= budget


async def test_stranger_tcp_connections_are_closed_at_once(gateway_factory):
    client = await gateway_factory(subscribe_dialogs="none", sip_allow=ONLY_ONE)
    port = listener_port(client)
    connections = [await connect_from(STRANGER_HOST, port) for _ in range(10)]
    try:
        closed = await asyncio.gather(*(closed_by_peer(r, within=2.0) for r, _ in connections))
        assert closed == [True] * 10
        assert client.server.app[keys.LISTENER].open_connections == 0
    finally:
        for _, writer in connections:
            writer.close()


async def test_idle_admitted_tcp_connection_is_closed_and_a_busy_one_kept(gateway_factory):
    client = await gateway_factory(subscribe_dialogs="none", sip_tcp_idle_timeout=0.5)
    port = listener_port(client)
    idle_reader, idle_writer = await connect_from("127.0.0.1", port)
    busy_reader, busy_writer = await connect_from("127.0.0.1", port)
    try:
        started = time.monotonic()
        for _ in range(6):  # RFC 5626 keep-alives (CRLFCRLF) keep a connection alive
            busy_writer.write(b"\r\n\r\n")
            await busy_writer.drain()
            await asyncio.sleep(0.2)
        assert await closed_by_peer(idle_reader, within=3.0)
        assert 0.4 <= time.monotonic() - started <= 4.0
        busy_writer.write(options(1, transport="TCP"))
        [answer] = await responses(busy_reader, 1, within=2.0)
        assert answer.status == 200
    finally:
        idle_writer.close()
        busy_writer.close()


async def test_tcp_connection_caps_per_source_and_in_total(gateway_factory):
    client = await gateway_factory(
        subscribe_dialogs="none",
        sip_allow=("127.0.0.0/8",),
        sip_tcp_max_per_source=2,
        sip_tcp_max_connections=3,
    )
    port = listener_port(client)
    opened = []

    async def usable(host: str, n: int) -> bool:
        reader, writer = await connect_from(host, port)
        opened.append(writer)
        writer.write(options(n, host, "TCP"))
        got = await responses(reader, 1, within=2.0)
        return [r.status for r in got] == [200]

    try:
        assert await usable("127.0.0.1", 1) and await usable("127.0.0.1", 2)
        assert not await usable("127.0.0.1", 3)  # a third from one source
        assert await usable("127.0.0.3", 4)
        assert not await usable("127.0.0.4", 5)  # a fourth in total
        opened[0].close()
        await asyncio.sleep(0.3)
        assert await usable("127.0.0.4", 6)
        assert client.server.app[keys.LISTENER].core.stats.connections_refused == 2
    finally:
        for writer in opened:
            writer.close()


@pytest.mark.parametrize("requests", [60])
async def test_tcp_requests_over_the_rate_get_503_with_retry_after(gateway_factory, requests):
    client = await gateway_factory(subscribe_dialogs="none", sip_rate_limit=1, sip_rate_burst=5)
    port = listener_port(client)
    reader, writer = await connect_from("127.0.0.1", port)
    try:
        writer.write(b"".join(options(n, transport="TCP") for n in range(requests)))
        await writer.drain()
        got = await responses(reader, requests, within=5.0)
    finally:
        writer.close()
    assert len(got) == requests  # an answer for every request: none dropped silently
    busy = [r for r in got if r.status == 503]
    assert len([r for r in got if r.status == 200]) + len(busy) == requests
    assert len(busy) >= requests - 5 - 5  # the burst, and a token a second while it runs
    assert all(int(r.headers.get("Retry-After") or "0") >= 1 for r in busy)


async def test_a_peer_that_reads_none_of_its_answers_is_closed(gateway_factory):
    client = await gateway_factory(subscribe_dialogs="none", sip_tcp_idle_timeout=0.5)
    port = listener_port(client)
    listener = client.server.app[keys.LISTENER]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window fills fast
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    try:
        # Keep sending, never read: the listener's reads never go idle, its writes back up.
        batch = b"".join(options(n, transport="TCP") for n in range(100))
        deadline = time.monotonic() + 3.0
        with contextlib.suppress(ConnectionError, TimeoutError):
            while time.monotonic() < deadline:
                await asyncio.wait_for(loop.sock_sendall(sock, batch), deadline - time.monotonic())

        async def closed() -> bool:
            return bool(listener.open_connections == 0)

        started = time.monotonic()
        while not await closed() and time.monotonic() - started < 5.0:
            await asyncio.sleep(0.1)
        assert await closed()
        assert listener.core.stats.idle_closed == 1
    finally:
        sock.close()
