"""Issue #14 items 1 and 3 on the real gateway and the real pjsua2 UA: contacts with host names
are resolved by sipbridge (RFC 3263, a DNS server of the test's own on loopback), never by
pjsip's blocking getaddrinfo; addresses outside phone_networks get nothing, credentials least."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from sipbridge.api import keys
from sipbridge.sip._pjsua2 import PjsuaSender
from sipbridge.sip.action_uri import OutgoingRequest, SipAnswer
from tests.dns_server import start_dns
from tests.helpers import SippPhone, free_port
from tests.integration.conftest import AUTH, register

CALL_ID = "7e1f0a2b-3c4d5e6f-70819203@127.0.0.1"
DOOMED_CALL_ID = "0d0d0d0d-3c4d5e6f-70819203@127.0.0.1"
STALL_BOUND = 0.5  # seconds: what another phone's command or /v1/health may take meanwhile


class Counting:
    """The session's UA, recording every request handed to it (what pjsip would put on the wire)."""

    def __init__(self, agent: PjsuaSender) -> None:
        self._agent = agent
        self.handed: list[OutgoingRequest] = []

    @property
    def local_contact(self) -> str:
        return self._agent.local_contact

    def start(self) -> None:
        pass  # nothing of its own to bind

    def stop(self) -> None:
        pass

    async def send(self, request: OutgoingRequest) -> SipAnswer:
        self.handed.append(request)
        return await self._agent.send(request)


@pytest.fixture
def sipp(tmp_path):
    phones: list[SippPhone] = []

    def start(scenario: str, calls: int = 1, transport: str = "u1") -> SippPhone:
        phone = SippPhone(
            scenario=scenario, port=free_port(), workdir=tmp_path, calls=calls, transport=transport
        )
        phones.append(phone.start())
        return phone

    yield start
    for phone in phones:
        phone.kill()


@pytest.fixture
async def dns():
    servers = []

    async def start(records=None, *, silent=False):
        server = await start_dns(records, silent=silent)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
async def counting_gateway(tmp_path, user_agent):
    """A gateway on the session's UA whose sender records what reaches pjsua2."""
    from aiohttp.test_utils import TestClient, TestServer

    from sipbridge.api import create_app
    from tests.integration.conftest import gateway_settings

    made = []

    async def make(**overrides):
        counting = Counting(user_agent)
        app = create_app(gateway_settings(tmp_path, **overrides), sender_factory=lambda _: counting)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        made.append(client)
        return client, counting

    yield make
    for client in made:
        await client.close()


async def timed(awaitable):
    started = time.monotonic()
    result = await awaitable
    return result, time.monotonic() - started


def register_datagram(port: int, contact: str, phone: str = "9001") -> None:
    """A REGISTER to the listener, as any source in sip_allow may send."""
    lines = [
        "REGISTER sip:sipbridge@127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-{phone}-{time.monotonic_ns()}",
        f"From: <sip:{phone}@pbx.test>;tag=f1",
        f"To: <sip:{phone}@pbx.test>",
        f"Call-ID: reg-{phone}-{time.monotonic_ns()}@127.0.0.1",
        "CSeq: 1 REGISTER",
        "Max-Forwards: 70",
        f"Contact: <{contact}>",
        "Expires: 600",
        "Content-Length: 0",
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), ("127.0.0.1", port))


async def test_a_dns_that_never_answers_stalls_nothing_but_its_own_command(
    counting_gateway, dns, sipp
):
    """The freeze of issue #14 item 1: pjsip's getaddrinfo held the loop for 9.5 s."""
    dead = await dns(silent=True)
    gateway, counting = await counting_gateway(
        dns_nameservers=(dead.address,), dns_timeout=1.0, command_deadline=3.0
    )
    phone = sipp("phone_ok.xml", calls=3)
    await register(gateway, "1001", phone.contact, CALL_ID)
    await register(gateway, "9000", "sip:9000@no-such-host.invalid", DOOMED_CALL_ID)
    # A REGISTER with such a contact: the dialog SUBSCRIBE to it must not stall anything either.
    register_datagram(gateway.server.app[keys.LISTENER].port, "sip:9001@also-dead.invalid")

    doomed = asyncio.create_task(
        timed(gateway.post(f"/v1/calls/{DOOMED_CALL_ID}/hold", headers=AUTH))
    )
    await asyncio.sleep(0.1)  # the doomed command is waiting on DNS now
    stalls = []
    for action in ("hold", "resume", "hold"):
        health, took = await timed(gateway.get("/v1/health"))
        assert health.status == 200
        stalls.append(took)
        response, took = await timed(gateway.post(f"/v1/calls/{CALL_ID}/{action}", headers=AUTH))
        assert response.status == 200, await response.text()
        stalls.append(took)
    assert not doomed.done(), "the DNS was meant to be still silent while the others ran"
    response, took = await doomed
    body = await response.json()
    assert response.status == 504, body
    assert body["type"].endswith("phone-dns-timeout")
    assert "nothing was sent" in body["detail"]
    assert 0.9 <= took < 3.0, "the command's deadline (3 s) holds, the DNS budget (1 s) first"
    assert max(stalls) < STALL_BOUND, stalls
    assert phone.finish() == 0
    assert dead.queries[("no-such-host.invalid", "NAPTR")] >= 1
    # pjsua2 was never handed a name: the one phone it saw is sipp's, by address.
    assert all("invalid" not in r.target_uri for r in counting.handed)


async def test_a_host_name_resolved_by_dns_gets_its_notify_and_the_answer_is_cached(
    gateway_factory, dns, sipp
):
    phone = sipp("phone_ok.xml", calls=3)
    server = await dns(
        {
            ("phone.test", "A"): (300, ["127.0.0.1"]),
            ("_sip._udp.srv.test", "SRV"): (300, [f"0 0 {phone.port} phone.test."]),
        }
    )
    gateway = await gateway_factory(dns_nameservers=(server.address,), subscribe_dialogs="none")
    await register(gateway, "1001", f"sip:1001@phone.test:{phone.port}", CALL_ID)

    for action in ("hold", "resume"):
        response = await gateway.post(f"/v1/calls/{CALL_ID}/{action}", headers=AUTH)
        assert response.status == 200, await response.text()
    assert server.queries[("phone.test", "A")] == 1, "the second command used the cached answer"

    # No port, no transport: NAPTR (none) -> SRV _sips._tcp, _sip._tcp, _sip._udp -> A.
    await register(gateway, "1001", "sip:1001@srv.test", CALL_ID)
    response = await gateway.post(f"/v1/calls/{CALL_ID}/hold", headers=AUTH)
    assert response.status == 200, await response.text()
    assert phone.finish() == 0
    assert [n.uri for n in phone.received] == [f"sip:1001@127.0.0.1:{phone.port}"] * 3
    assert server.queries[("srv.test", "NAPTR")] == 1
    assert server.queries[("_sip._udp.srv.test", "SRV")] == 1


async def test_a_name_resolving_outside_phone_networks_gets_nothing(counting_gateway, dns):
    server = await dns({("evil.test", "A"): (300, ["192.0.2.1"])})
    gateway, counting = await counting_gateway(
        dns_nameservers=(server.address,), phone_networks=("127.0.0.0/8",)
    )
    # An address outside is refused where it enters (422 naming the field) ...
    response = await gateway.put(
        "/v1/phones/1002", json={"contact": "sip:1002@192.0.2.1:5060"}, headers=AUTH
    )
    assert response.status == 422
    assert (await response.json())["errors"][0]["field"] == "contact"
    # ... a name when it resolves, before anything is sent (also the dialog SUBSCRIBE).
    await register(gateway, "1002", "sip:1002@evil.test:5060", CALL_ID)
    register_datagram(gateway.server.app[keys.LISTENER].port, "sip:9002@evil.test", "9002")
    register_datagram(gateway.server.app[keys.LISTENER].port, "sip:9003@192.0.2.1", "9003")
    response = await gateway.post(f"/v1/calls/{CALL_ID}/hold", headers=AUTH)
    body = await response.json()
    assert response.status == 502, body
    assert body["type"].endswith("phone-contact-not-allowed")
    assert "192.0.2.1" in body["detail"] and "nothing was sent" in body["detail"]
    await asyncio.sleep(0.3)  # time for the dialog SUBSCRIBE to 9002 to have been tried
    store = gateway.server.app[keys.STORE]
    assert [p.id for p in store.phones()] == ["1002", "9002"], "9003 got a 403"
    assert any(a == "contact-refused" for _, _, a, _ in store.audit_records())
    assert counting.handed == [], "NOTHING may be handed to pjsua2 for 192.0.2.x"


async def test_credentials_never_go_to_a_rest_url_outside_phone_networks(
    gateway_factory, tmp_path
):
    connections = 0

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    elsewhere = await asyncio.start_server(count, "127.0.0.2", 0)
    port = elsewhere.sockets[0].getsockname()[1]
    credentials = tmp_path / "phones.toml"
    credentials.write_text(
        f'[default]\npassword = "S3cret"\n[phones."1001"]\nurl = "http://127.0.0.2:{port}"\n'
        'auth = "basic"\n'
    )
    credentials.chmod(0o600)
    try:
        gateway = await gateway_factory(
            phone_credentials_file=credentials, phone_networks=("127.0.0.1/32",)
        )
        await register(gateway, "1001", "sip:1001@127.0.0.1:5999", CALL_ID)
        response = await gateway.post(f"/v1/calls/{CALL_ID}/hold?transport=http", headers=AUTH)
        body = await response.json()
        assert response.status == 502, body
        assert body["type"].endswith("phone-contact-not-allowed")
        await asyncio.sleep(0.1)
        assert connections == 0
    finally:
        elsewhere.close()
        await elsewhere.wait_closed()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_resolver_caches_for_the_ttl_and_failures_briefly(dns):
    """dnspython against the test's DNS server; the clock is the test's."""
    from sipbridge.errors import ContactUnresolvable
    from sipbridge.sip.resolver import NEGATIVE_TTL, ContactResolver
    from sipbridge.sip.uri import parse_uri

    server = await dns({("phone.test", "A"): (10, ["127.0.0.7"])})
    clock = Clock()
    resolver = ContactResolver(
        nameservers=(server.address,), timeout=1.0, cache_size=16, hosts={}, clock=clock
    )
    uri = parse_uri("sip:1001@phone.test:5060")
    for _ in range(3):
        assert (await resolver.resolve(uri)).address == "127.0.0.7"
    assert server.queries[("phone.test", "A")] == 1
    clock.now += 11  # past the TTL
    await resolver.resolve(uri)
    assert server.queries[("phone.test", "A")] == 2

    gone = parse_uri("sip:1001@gone.test:5060")
    for _ in range(3):
        with pytest.raises(ContactUnresolvable, match="no A or AAAA"):
            await resolver.resolve(gone)
    assert server.queries[("gone.test", "A")] == 1, "NXDOMAIN is cached too"
    clock.now += NEGATIVE_TTL + 1
    with pytest.raises(ContactUnresolvable):
        await resolver.resolve(gone)
    assert server.queries[("gone.test", "A")] == 2

    for n in range(20):
        with pytest.raises(ContactUnresolvable):
            await resolver.resolve(parse_uri(f"sip:1001@n{n}.test:5060"))
    assert resolver.cached <= 16, "the cache is bounded"


async def test_hosts_file_names_need_no_dns(dns):
    from sipbridge.sip.resolver import ContactResolver
    from sipbridge.sip.uri import parse_uri

    dead = await dns(silent=True)
    resolver = ContactResolver(
        nameservers=(dead.address,), timeout=0.5, hosts={"localhost": ("127.0.0.1", "::1")}
    )
    target = await resolver.resolve(parse_uri("sip:1001@localhost"))
    assert (target.address, target.port, target.transport) == ("127.0.0.1", 5060, "udp")
    assert not dead.queries


async def test_a_dead_first_nameserver_leaves_time_for_the_second(dns):
    from sipbridge.sip.resolver import ContactResolver
    from sipbridge.sip.uri import parse_uri

    dead = await dns(silent=True)
    live = await dns({("phone.test", "A"): (60, ["127.0.0.8"])})
    resolver = ContactResolver(nameservers=(dead.address, live.address), timeout=1.0, hosts={})
    target, took = await timed(resolver.resolve(parse_uri("sip:1001@phone.test:5060")))
    assert target.address == "127.0.0.8"
    assert dead.queries and took < 1.0


async def test_a_target_that_refuses_the_connection_is_followed_by_the_next(
    gateway_factory, dns, sipp
):
    """RFC 3263 §4.3: the first SRV target refuses the TCP connection (nothing listens), so the
    same NOTIFY goes, as a new transaction, to the second: the sipp phone. Before, 502."""
    phone = sipp("phone_ok.xml", transport="t1")
    closed = free_port()
    server = await dns(
        {
            ("_sip._tcp.phone.test", "SRV"): (
                300,
                [f"10 0 {closed} dead.test.", f"20 0 {phone.port} alive.test."],
            ),
            ("dead.test", "A"): (300, ["127.0.0.1"]),
            ("alive.test", "A"): (300, ["127.0.0.1"]),
        }
    )
    gateway = await gateway_factory(dns_nameservers=(server.address,), subscribe_dialogs="none")
    await register(gateway, "1001", "sip:1001@phone.test;transport=tcp", CALL_ID)
    response, took = await timed(gateway.post(f"/v1/calls/{CALL_ID}/hold", headers=AUTH))
    assert response.status == 200, await response.text()
    assert took < 1.0  # a refusal costs no timer: well inside the 3 s deadline
    assert phone.finish() == 0
    assert [n.uri for n in phone.received] == [f"sip:1001@127.0.0.1:{phone.port};transport=tcp"]


async def test_every_target_refusing_gives_one_502_naming_each(gateway_factory, dns):
    closed = [free_port(), free_port()]
    server = await dns(
        {
            ("_sip._tcp.phone.test", "SRV"): (
                300,
                [f"10 0 {closed[0]} dead.test.", f"20 0 {closed[1]} dead.test."],
            ),
            ("dead.test", "A"): (300, ["127.0.0.1"]),
        }
    )
    gateway = await gateway_factory(dns_nameservers=(server.address,), subscribe_dialogs="none")
    await register(gateway, "1001", "sip:1001@phone.test;transport=tcp", CALL_ID)
    response, took = await timed(gateway.post(f"/v1/calls/{CALL_ID}/hold", headers=AUTH))
    body = await response.json()
    assert response.status == 502, body
    assert body["type"].endswith("phone-unreachable")
    assert body["detail"].count("Connection refused") == 2
    assert took < 1.0


async def test_over_udp_a_first_target_that_never_answers_is_not_followed(
    gateway_factory, dns, sipp
):
    """A timeout is no transport failure (RFC 3263 §4.3 as sipbridge reads it for commands):
    the NOTIFY may have arrived, so no second phone address gets it too."""
    phone = sipp("phone_ok.xml")
    server = await dns(
        {
            ("_sip._udp.phone.test", "SRV"): (
                300,
                [f"10 0 {phone.port} silent.test.", f"20 0 {phone.port} alive.test."],
            ),
            ("silent.test", "A"): (300, ["127.0.0.2"]),  # nothing listens: ICMP, unseen
            ("alive.test", "A"): (300, ["127.0.0.1"]),
        }
    )
    gateway = await gateway_factory(dns_nameservers=(server.address,), subscribe_dialogs="none")
    await register(gateway, "1001", "sip:1001@phone.test;transport=udp", CALL_ID)
    response = await gateway.post(f"/v1/calls/{CALL_ID}/hold", headers=AUTH)
    body = await response.json()
    assert response.status == 504, body
    assert body["sent"] is True
    phone.finish(timeout=0.5)
    assert phone.received == []
