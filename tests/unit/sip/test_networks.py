"""phone_networks and the sender that hands pjsip addresses only (the resolver faked)."""

import pytest

from sipbridge.errors import ContactNotAllowed
from sipbridge.sip.action_uri import OutgoingRequest, SipAnswer, compose
from sipbridge.sip.networks import DEFAULT_PHONE_NETWORKS, PhoneNetworks
from sipbridge.sip.resolver import ResolvingSender, parse_hosts, parse_nameserver
from sipbridge.sip.rfc3263 import Target
from sipbridge.sip.sender import FakeSender
from sipbridge.sip.uri import SipUri, parse_uri


@pytest.mark.parametrize(
    ("address", "inside"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("172.31.255.1", True),
        ("172.32.0.1", False),
        ("192.168.4.5", True),
        ("100.64.0.9", True),
        ("::1", True),
        ("fd12:3456::1", True),
        ("::ffff:10.0.0.5", True),
        ("192.0.2.1", False),
        ("8.8.8.8", False),
        ("169.254.1.1", False),
        ("2001:db8::1", False),
    ],
)
def test_default_networks(address, inside):
    assert PhoneNetworks.parse(DEFAULT_PHONE_NETWORKS).allows(address) is inside


def test_contacts_with_an_address_outside_are_refused_names_wait_for_resolution():
    networks = PhoneNetworks.parse(["127.0.0.0/8"])
    assert networks.why_not_contact("sip:1001@127.0.0.1:5060") is None
    assert "192.0.2.1 is outside phone_networks (127.0.0.0/8)" in (
        networks.why_not_contact("sip:1001@192.0.2.1:5060") or ""
    )
    assert networks.why_not_contact("sip:1001@[2001:db8::1]") is not None
    assert networks.why_not_contact("sip:1001@phone.example.com") is None


class StubResolver:
    """Answers from a table; records what was asked."""

    def __init__(self, table: dict[str, Target | tuple[Target, ...]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def targets(self, uri: SipUri) -> tuple[Target, ...]:
        self.asked.append(str(uri))
        found = self.table[uri.host]
        return found if isinstance(found, tuple) else (found,)


def notify(contact, transport=None, proxy=None) -> OutgoingRequest:
    return compose(
        contact=contact,
        transport=transport,
        body=b"{}",
        local_contact="sip:sipbridge@127.0.0.1:5070",
        outbound_proxy=proxy,
    )


async def test_a_name_becomes_its_address_in_the_request_uri():
    inner = FakeSender()
    resolver = StubResolver({"phone.test": Target(address="127.0.0.1", port=5090, transport="tcp")})
    sender = ResolvingSender(inner, resolver, PhoneNetworks.parse(["127.0.0.0/8"]))
    answer = await sender.send(notify("sip:1001@phone.test;line=2"))
    assert answer.status == 200
    [sent] = inner.sent
    assert sent.target_uri == "sip:1001@127.0.0.1:5090;line=2;transport=tcp"


async def test_an_address_outside_is_refused_and_nothing_is_sent():
    inner = FakeSender()
    resolver = StubResolver({"evil.test": Target(address="192.0.2.1", port=5060, transport="udp")})
    sender = ResolvingSender(inner, resolver, PhoneNetworks.parse(["127.0.0.0/8"]))
    with pytest.raises(ContactNotAllowed, match=r"192\.0\.2\.1, outside phone_networks"):
        await sender.send(notify("sip:1001@evil.test"))
    assert inner.sent == []


async def test_a_numeric_contact_leaves_unchanged():
    inner = FakeSender()
    resolver = StubResolver({"10.0.0.5": Target(address="10.0.0.5", port=5060, transport="udp")})
    sender = ResolvingSender(inner, resolver, PhoneNetworks.parse(DEFAULT_PHONE_NETWORKS))
    request = notify("sip:1001@10.0.0.5:5060")
    await sender.send(request)
    assert inner.sent == [request]


async def test_an_outbound_proxy_name_is_resolved_and_the_phone_uri_kept():
    inner = FakeSender()
    resolver = StubResolver(
        {
            "proxy.test": Target(address="192.0.2.7", port=5060, transport="udp"),
            "phone.test": Target(address="127.0.0.5", port=5060, transport="udp"),
        }
    )
    sender = ResolvingSender(inner, resolver, PhoneNetworks.parse(["127.0.0.0/8"]))
    await sender.send(notify("sip:1001@phone.test", proxy="sip:proxy.test"))
    [sent] = inner.sent
    assert sent.proxy == "sip:192.0.2.7:5060;lr"
    assert sent.target_uri == "sip:1001@phone.test"
    assert resolver.asked == ["sip:1001@phone.test", "sip:proxy.test;lr"]


def test_hosts_file_and_nameserver_settings():
    hosts = parse_hosts("127.0.0.1 localhost Loopback.\n# c\n::1 localhost ip6-localhost\nbad line\n")
    assert hosts["localhost"] == ("127.0.0.1", "::1")
    assert hosts["loopback"] == ("127.0.0.1",)
    assert parse_nameserver("192.0.2.53") == ("192.0.2.53", 53)
    assert parse_nameserver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_nameserver("[::1]:5353") == ("::1", 5353)
    assert parse_nameserver("2001:db8::53") == ("2001:db8::53", 53)
    with pytest.raises(ValueError):
        parse_nameserver("dns.example.com")


class StubAiohttpResolver:
    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    async def resolve(self, host, port=0, family=0):
        return [
            {"hostname": host, "host": a, "port": port, "family": family, "proto": 0, "flags": 0}
            for a in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_the_rest_client_connects_only_to_addresses_inside():
    """A phone's REST URL on a name: aiohttp may only connect where phone_networks allow."""
    from sipbridge.phone.http import NetworksResolver, OutsideNetworksError

    networks = PhoneNetworks.parse(["127.0.0.1/32"])
    mixed = NetworksResolver(networks, StubAiohttpResolver(["192.0.2.1", "127.0.0.1"]))  # type: ignore[arg-type]
    assert [r["host"] for r in await mixed.resolve("phone.test", 443)] == ["127.0.0.1"]
    outside = NetworksResolver(networks, StubAiohttpResolver(["127.0.0.2"]))  # type: ignore[arg-type]
    with pytest.raises(OutsideNetworksError, match="outside phone_networks"):
        await outside.resolve("phone.test", 443)


def _tcp(address: str, port: int = 5060) -> Target:
    return Target(address=address, port=port, transport="tcp")


REFUSED = SipAnswer(status=503, reason="Connection refused", from_wire=False, transport_failed=True)
TIMER_F = SipAnswer(status=408, reason="Request Timeout", from_wire=False)


def by_address(answers: dict[str, SipAnswer]):
    def answer(request: OutgoingRequest) -> SipAnswer:
        host = parse_uri(request.target_uri).host
        return answers.get(host, SipAnswer(status=200, reason="OK", from_wire=True))

    return answer


async def test_a_target_that_refuses_is_followed_by_the_next_one():
    """RFC 3263 §4.3: a transport failure sends the request to the next target."""
    inner = FakeSender(by_address({"127.0.0.2": REFUSED}))
    resolver = StubResolver({"phone.test": (_tcp("127.0.0.2"), _tcp("127.0.0.3"))})
    sender = ResolvingSender(
        inner, resolver, PhoneNetworks.parse(["127.0.0.0/8"]), failover_within=1.0
    )
    answer = await sender.send(notify("sip:1001@phone.test;transport=tcp"))
    assert answer.status == 200
    assert [parse_uri(r.target_uri).host for r in inner.sent] == ["127.0.0.2", "127.0.0.3"]


async def test_a_timeout_is_final_no_second_target_gets_the_command():
    inner = FakeSender(by_address({"127.0.0.2": TIMER_F}))
    resolver = StubResolver({"phone.test": (_tcp("127.0.0.2"), _tcp("127.0.0.3"))})
    sender = ResolvingSender(
        inner, resolver, PhoneNetworks.parse(["127.0.0.0/8"]), failover_within=1.0
    )
    answer = await sender.send(notify("sip:1001@phone.test;transport=tcp"))
    assert answer.status == 408
    assert len(inner.sent) == 1


async def test_every_target_failing_names_each_reason_and_stays_a_transport_failure():
    inner = FakeSender(lambda _: REFUSED)
    resolver = StubResolver({"phone.test": (_tcp("127.0.0.2"), _tcp("127.0.0.3"))})
    sender = ResolvingSender(
        inner, resolver, PhoneNetworks.parse(["127.0.0.0/8"]), failover_within=1.0
    )
    answer = await sender.send(notify("sip:1001@phone.test;transport=tcp"))
    assert (answer.status, answer.transport_failed) == (503, True)
    assert answer.reason == "Connection refused; Connection refused"
    assert len(inner.sent) == 2


async def test_no_failover_once_its_time_is_spent():
    now = [0.0]
    inner = FakeSender(lambda _: (now.__setitem__(0, now[0] + 2.0), REFUSED)[1])
    resolver = StubResolver({"phone.test": (_tcp("127.0.0.2"), _tcp("127.0.0.3"))})
    sender = ResolvingSender(
        inner,
        resolver,
        PhoneNetworks.parse(["127.0.0.0/8"]),
        failover_within=1.0,
        clock=lambda: now[0],
    )
    await sender.send(notify("sip:1001@phone.test;transport=tcp"))
    assert len(inner.sent) == 1


async def test_targets_outside_phone_networks_are_skipped_not_tried():
    inner = FakeSender()
    resolver = StubResolver({"phone.test": (_tcp("192.0.2.1"), _tcp("127.0.0.3"))})
    sender = ResolvingSender(inner, resolver, PhoneNetworks.parse(["127.0.0.0/8"]))
    await sender.send(notify("sip:1001@phone.test;transport=tcp"))
    assert [parse_uri(r.target_uri).host for r in inner.sent] == ["127.0.0.3"]


async def test_a_tls_hop_by_name_carries_the_name_its_certificate_must_show():
    inner = FakeSender()
    tls = Target(address="127.0.0.4", port=5061, transport="tls")
    resolver = StubResolver({"phone.test": tls, "127.0.0.9": tls})
    sender = ResolvingSender(inner, resolver, PhoneNetworks.parse(["127.0.0.0/8"]))
    await sender.send(notify("sips:1001@phone.test"))
    await sender.send(notify("sips:1001@127.0.0.9:5061"))
    await sender.send(notify("sip:1001@127.0.0.9:5061", proxy="sip:phone.test;transport=tls"))
    named, numeric, proxied = inner.sent
    assert (named.target_uri, named.tls_name) == ("sips:1001@127.0.0.4:5061", "phone.test")
    assert numeric.tls_name is None  # an address: pjsip checks it against the certificate
    assert proxied.tls_name == "phone.test"
