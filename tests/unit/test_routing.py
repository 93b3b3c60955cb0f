"""Transport choice and the Ref rule (sans-I/O)."""

import pytest

from sipbridge import catalog
from sipbridge.config import Settings
from sipbridge.errors import NotSupportedByPhone, TransportUnavailable
from sipbridge.profiles import load_profiles
from sipbridge.routing import choose_transport, refs_call_id

BOOK = load_profiles(Settings().sip_profiles_dir)
VVX_642 = BOOK.match("PolycomVVX-VVX_411-UA/6.4.3.5018")
VVX_640 = BOOK.match("PolycomVVX-VVX_411-UA/6.4.0.1234")
VVX_5 = BOOK.match("PolycomVVX-VVX_450-UA/5.9.5.0614")
CCX_350 = BOOK.match("PolyCCX-CCX_350-UA/1.3.0.0102")


@pytest.mark.parametrize(
    ("command", "capabilities", "requested", "expected"),
    [
        ("holdCall", VVX_642, "auto", "sip"),
        ("holdCall", VVX_640, "auto", "http"),
        ("holdCall", VVX_5, "auto", "http"),
        ("holdCall", None, "auto", "sip"),
        ("holdCall", VVX_642, "http", "http"),
        ("deviceInfoV2", VVX_642, "auto", "http"),
        ("deviceInfoV2", None, "auto", "http"),
        ("warmTransfer", VVX_642, "auto", "sip"),
        ("warmTransfer", None, "sip", "sip"),
        ("skypeSignIn", VVX_642, "auto", "http"),
    ],
)
def test_transport_choice(command, capabilities, requested, expected):
    spec = catalog.lookup(command)
    assert choose_transport(spec, capabilities, requested) == expected


@pytest.mark.parametrize(
    ("command", "capabilities", "requested", "error", "words"),
    [
        ("warmTransfer", VVX_642, "http", TransportUnavailable, "SIP-only"),
        ("warmTransfer", None, "http", TransportUnavailable, "SIP-only"),
        ("warmTransfer", VVX_640, "auto", NotSupportedByPhone, "6.4.2"),
        # SIP-only stays SIP-only in auto: a UCS 5.9 phone gets a refusal, not an HTTP request.
        ("warmTransfer", VVX_5, "auto", TransportUnavailable, "takes no REST commands over SIP"),
        ("deviceInfoV2", VVX_642, "sip", TransportUnavailable, "answers with data"),
        ("skypeSignIn", VVX_642, "sip", TransportUnavailable, "must not travel"),
        ("holdCall", VVX_5, "sip", TransportUnavailable, "takes no REST commands over SIP"),
        ("holdCall", VVX_640, "sip", TransportUnavailable, "only from firmware 6.4.2"),
        ("holdCall", CCX_350, "auto", NotSupportedByPhone, "no REST API"),
        ("joinCalls", VVX_5, "auto", NotSupportedByPhone, "ucs-5"),
    ],
)
def test_refusals_say_why(command, capabilities, requested, error, words):
    with pytest.raises(error) as info:
        choose_transport(catalog.lookup(command), capabilities, requested)
    assert words in info.value.detail


def test_ref_by_call_id_needs_6_4_2():
    refs_call_id(VVX_642, {"Ref": "abc@host"})
    refs_call_id(None, {"Ref": "abc@host"})
    refs_call_id(VVX_640, {"Digits": "1"})  # no Ref: fine
    with pytest.raises(NotSupportedByPhone) as info:
        refs_call_id(VVX_640, {"Ref-A": "a@h", "Ref-B": "b@h"})
    assert info.value.problems[0].field == "call_id"
