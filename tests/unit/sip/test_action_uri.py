import pytest

from sipbridge.sip import action_uri
from sipbridge.sip.message import SipParseError


@pytest.mark.parametrize(
    ("contact", "transport", "expected"),
    [
        ("sip:1001@10.0.0.5:5060", "udp", "sip:1001@10.0.0.5:5060"),
        ("sip:1001@10.0.0.5:5060", None, "sip:1001@10.0.0.5:5060"),
        ("sip:1001@10.0.0.5:5060", "tcp", "sip:1001@10.0.0.5:5060;transport=tcp"),
        ("sip:1001@10.0.0.5;transport=TCP", "tcp", "sip:1001@10.0.0.5;transport=TCP"),
        ("sip:1001@[2001:db8::5]:5060", "tcp", "sip:1001@[2001:db8::5]:5060;transport=tcp"),
        ("sips:1001@pbx.example.com", "tls", "sips:1001@pbx.example.com"),
        ("sip:1001@10.0.0.5?Subject=x", "udp", "sip:1001@10.0.0.5"),
    ],
)
def test_request_uri_keeps_the_transport_the_phone_registered_over(contact, transport, expected):
    assert action_uri.request_uri(contact, transport) == expected


def test_compose_adds_event_and_our_contact():
    notify = action_uri.compose(
        contact="sip:1001@10.0.0.5:5060",
        transport="udp",
        body=b'{"command-URI":"/api/v1/callctrl/holdCall","data":{}}',
        local_contact="sip:sipbridge@10.0.0.1:5070",
    )
    assert notify.headers == (("Event", "ACTION-URI"), ("Contact", "<sip:sipbridge@10.0.0.1:5070>"))
    assert notify.content_type == "application/json"


@pytest.mark.parametrize("contact", ["sip:1001@10.0.0.5\r\nX-Evil: 1", "sip:10 01@h", "mailto:a@b"])
def test_compose_refuses_contacts_that_could_inject(contact):
    with pytest.raises((SipParseError, ValueError)):
        action_uri.compose(contact=contact, transport="udp", body=b"{}", local_contact="sip:a@b")


@pytest.mark.parametrize(
    ("proxy", "route"),
    [
        ("sip:127.0.0.1:5060;lr", "sip:127.0.0.1:5060;lr"),
        ("sip:proxy.example.com", "sip:proxy.example.com;lr"),
    ],
)
def test_outbound_proxy_becomes_a_loose_route(proxy, route):
    notify = action_uri.compose(
        contact="sip:1001@10.0.0.5",
        transport="udp",
        body=b"{}",
        local_contact="sip:a@b",
        outbound_proxy=proxy,
    )
    assert notify.proxy == route
    assert notify.target_uri == "sip:1001@10.0.0.5"
