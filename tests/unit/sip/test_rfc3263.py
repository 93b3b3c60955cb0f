"""RFC 3263 §4 planning, sans-I/O: what is looked up for a URI, and in what order."""

import pytest

from sipbridge.sip import rfc3263
from sipbridge.sip.rfc3263 import (
    AddressLookup,
    Naptr,
    Numeric,
    ServiceLookup,
    Srv,
    Target,
    UnresolvableUri,
    plan,
    srv_names,
    srv_order,
)
from sipbridge.sip.uri import parse_uri


@pytest.mark.parametrize(
    ("uri", "target"),
    [
        ("sip:1001@10.0.0.5", Target(address="10.0.0.5", port=5060, transport="udp")),
        ("sip:1001@10.0.0.5:5090;transport=TCP", Target(address="10.0.0.5", port=5090, transport="tcp")),
        ("sips:1001@10.0.0.5", Target(address="10.0.0.5", port=5061, transport="tls")),
        ("sip:1001@[2001:db8::5]:5070", Target(address="2001:db8::5", port=5070, transport="udp")),
        ("sip:1001@10.0.0.5;transport=tls", Target(address="10.0.0.5", port=5061, transport="tls")),
    ],
)
def test_a_numeric_host_needs_no_lookup(uri, target):
    assert plan(parse_uri(uri)) == Numeric(target=target)


def test_a_name_with_a_port_is_an_address_lookup():
    # §4.1: an explicit port and no transport: UDP for sip:, TLS over TCP for sips:.
    assert plan(parse_uri("sip:1001@Phone.Example.COM:5062")) == AddressLookup(
        name="phone.example.com", port=5062, transport="udp"
    )
    assert plan(parse_uri("sips:1001@phone.example.com:5063")) == AddressLookup(
        name="phone.example.com", port=5063, transport="tls"
    )
    assert plan(parse_uri("sip:1001@phone.example.com:5064;transport=tcp")) == AddressLookup(
        name="phone.example.com", port=5064, transport="tcp"
    )


def test_a_name_with_a_transport_and_no_port_is_srv_for_that_transport_only():
    step = plan(parse_uri("sip:1001@phone.example.com;transport=tcp"))
    assert step == ServiceLookup(
        name="phone.example.com",
        transports=("tcp",),
        naptr=False,
        fallback=Target(address="", port=5060, transport="tcp"),
    )
    assert srv_names(step, []) == [("_sip._tcp.phone.example.com", "tcp")]


def test_a_bare_name_is_naptr_then_srv_for_each_transport_then_udp_5060():
    step = plan(parse_uri("sip:1001@example.com"))
    assert isinstance(step, ServiceLookup) and step.naptr
    assert step.fallback == Target(address="", port=5060, transport="udp")
    assert srv_names(step, []) == [
        ("_sips._tcp.example.com", "tls"),
        ("_sip._tcp.example.com", "tcp"),
        ("_sip._udp.example.com", "udp"),
    ]


def test_sips_resolves_to_tls_only():
    step = plan(parse_uri("sips:1001@example.com"))
    assert isinstance(step, ServiceLookup)
    assert step.transports == ("tls",)
    assert step.fallback == Target(address="", port=5061, transport="tls")
    naptr = [
        Naptr(order=10, preference=0, flags="s", service="SIP+D2U", replacement="_sip._udp.example.com."),
        Naptr(order=20, preference=0, flags="s", service="SIPS+D2T", replacement="_sips._tcp.example.com."),
    ]
    assert srv_names(step, naptr) == [("_sips._tcp.example.com", "tls")]


def test_naptr_order_then_preference_and_only_s_flags_and_known_services():
    step = plan(parse_uri("sip:1001@example.com"))
    assert isinstance(step, ServiceLookup)
    naptr = [
        Naptr(order=20, preference=0, flags="S", service="SIP+D2U", replacement="udp.example.com."),
        Naptr(order=10, preference=50, flags="s", service="SIP+D2T", replacement="tcp2.example.com."),
        Naptr(order=10, preference=10, flags="s", service="SIP+D2T", replacement="tcp1.example.com."),
        Naptr(order=5, preference=0, flags="a", service="SIP+D2T", replacement="a.example.com."),
        Naptr(order=5, preference=0, flags="s", service="SIP+D2S", replacement="sctp.example.com."),
    ]
    assert srv_names(step, naptr) == [
        ("tcp1.example.com", "tcp"),
        ("tcp2.example.com", "tcp"),
        ("udp.example.com", "udp"),
    ]


def test_srv_by_priority_then_weight_and_dot_means_no_service():
    records = [
        Srv(priority=20, weight=100, port=5060, target="c.example.com."),
        Srv(priority=10, weight=10, port=5060, target="b.example.com."),
        Srv(priority=10, weight=60, port=5060, target="a.example.com."),
        Srv(priority=0, weight=0, port=0, target="."),
    ]
    assert [r.target for r in srv_order(records)] == [
        "a.example.com.",
        "b.example.com.",
        "c.example.com.",
    ]


@pytest.mark.parametrize("uri", ["sip:1001@example.com;transport=sctp", "sips:1001@example.com;transport=udp"])
def test_transports_we_cannot_speak_are_refused(uri):
    with pytest.raises(UnresolvableUri):
        plan(parse_uri(uri))


def test_ip_literal_and_bare_host():
    assert rfc3263.ip_literal("[::1]") == "::1"
    assert rfc3263.ip_literal("10.0.0.5") == "10.0.0.5"
    assert rfc3263.ip_literal("phone.example.com") is None
