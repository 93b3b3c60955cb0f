"""phone_networks and the sender that hands pjsip addresses only (the resolver faked)."""

import pytest

from sipbridge.errors import ContactNotAllowed
from sipbridge.sip.action_uri import OutgoingRequest, compose
from sipbridge.sip.networks import DEFAULT_PHONE_NETWORKS, PhoneNetworks
from sipbridge.sip.resolver import ResolvingSender, parse_hosts, parse_nameserver
from sipbridge.sip.rfc3263 import Target
from sipbridge.sip.sender import FakeSender
from sipbridge.sip.uri import SipUri


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

    def __init__(self, table: dict[str, Target]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(self, uri: SipUri) -> Target:
        self.asked.append(str(uri))
        return self.table[uri.host]


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
