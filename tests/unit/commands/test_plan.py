"""Transport choice and the Ref rule (sans-I/O)."""

import json

import pytest

from sipbridge import catalog
from sipbridge.commands.plan import Requested, choose_transport, refs_call_id
from sipbridge.config import Settings
from sipbridge.errors import NotSupportedByPhone, TransportUnavailable
from sipbridge.phone.profiles import load_profiles

BOOK = load_profiles(Settings().sip_profiles_dir)
VVX_642 = BOOK.match("PolycomVVX-VVX_411-UA/6.4.3.5018")
VVX_640 = BOOK.match("PolycomVVX-VVX_411-UA/6.4.0.1234")
VVX_5 = BOOK.match("PolycomVVX-VVX_450-UA/5.9.5.0614")
CCX_350 = BOOK.match("PolyCCX-CCX_350-UA/1.3.0.0102")
TRIO_7 = BOOK.match("PolycomRealPresenceTrio-Trio_8800-UA/7.2.2.1094")


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
        # issue 16.4: only call control travels in a NOTIFY in auto
        ("safeRestart", VVX_642, "auto", "http"),
        ("setConfig", VVX_642, "auto", "http"),
        ("simulateKeyEvent", None, "auto", "http"),
        ("dial", VVX_642, "auto", "sip"),
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
        # Manual 002: warmTransfer is UCS 6.4.2 / PVOS 8.0 only: elsewhere "not supported".
        ("warmTransfer", VVX_5, "auto", NotSupportedByPhone, "not in the ucs-5 command set"),
        ("joinCalls", VVX_642, "auto", NotSupportedByPhone, "not in the ucs-6 command set"),
        ("joinCalls", TRIO_7, "auto", NotSupportedByPhone, "not in the trio-ucs-7 command set"),
        ("warmTransfer", TRIO_7, "auto", NotSupportedByPhone, "not in the trio-ucs-7"),
        # Management commands go in a NOTIFY only where a profile says so; none ships that way.
        ("safeRestart", VVX_642, "sip", TransportUnavailable, "call control only"),
        ("setConfig", None, "sip", TransportUnavailable, "call control only"),
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


# -- Planner: the HTTP request a command becomes (no I/O) --------------------------------------


def tracked_phone(contact="sip:1001@10.0.0.5:5060", user_agent=None, profile=None, phone_id="1001"):
    from sipbridge.tracker import Phone

    return Phone(
        id=phone_id,
        aor=f"sip:{phone_id}@pbx",
        contact=contact,
        transport="udp",
        user_agent=user_agent,
        registered_until=2e9,
        updated_at=0.0,
        profile=profile,
    )


def routes(access_toml="", **options):
    from sipbridge.commands.plan import Planner
    from sipbridge.phone.access import PhoneAccessBook

    return Planner(
        profiles=BOOK,
        access=PhoneAccessBook.parse(access_toml),
        reports_contact="sip:sipbridge@127.0.0.1:5062",
        **options,
    )


def http_exchange(planner, phone, command):
    from sipbridge.commands.plan import HttpPlan

    plan = planner.plan(phone, command, requested="http")
    assert isinstance(plan, HttpPlan)
    return plan.exchange


ACCESS = """
[default]
password = "default-pw"
[phones.1002]
password = "pw-1002"
user = "Admin"
auth = "session"
url = "https://phone-1002.example:8443/"
"""


def test_the_exchange_for_a_phone_from_its_contact_and_the_defaults():
    book = routes(ACCESS)
    phone = tracked_phone(user_agent="PolycomVVX-VVX_411-UA/6.4.3.5018")
    capabilities = book.capabilities(phone)
    assert capabilities is not None and capabilities.profile.name == "vvx-ucs6"
    command = catalog.build(catalog.lookup("holdCall"), {"Ref": "c@h"})
    exchange = http_exchange(book, phone, command)
    assert exchange.url == "https://10.0.0.5/api/v1/callctrl/holdCall"
    assert (exchange.method, exchange.content_type) == ("POST", "application/json")
    assert json.loads(exchange.body) == {"data": {"Ref": "c@h"}}
    assert exchange.query == ()
    endpoint = exchange.endpoint
    assert (endpoint.phone_id, endpoint.base_url, endpoint.user, endpoint.auth) == (
        "1001",
        "https://10.0.0.5",
        "Polycom",
        "basic",  # the profile's first
    )
    assert endpoint.password.get_secret_value() == "default-pw"
    assert endpoint.session_lifetime == capabilities.profile.session_lifetime


def test_the_phones_own_entry_wins_and_its_url_loses_the_trailing_slash():
    book = routes(ACCESS)
    phone = tracked_phone(phone_id="1002", user_agent="PolycomVVX-VVX_411-UA/6.4.3.5018")
    command = catalog.build(catalog.lookup("callStatusV2"), {})
    exchange = http_exchange(book, phone, command)
    assert exchange.endpoint.base_url == "https://phone-1002.example:8443"
    assert (exchange.endpoint.user, exchange.endpoint.auth) == ("Admin", "session")
    assert exchange.endpoint.password.get_secret_value() == "pw-1002"
    assert exchange.method == "GET" and exchange.body == b""


def test_without_a_profile_digest_and_the_default_session_lifetime():
    book = routes(ACCESS, scheme="http", port=8080)
    phone = tracked_phone(contact="sip:1001@[2001:db8::5]:5060")
    assert book.capabilities(phone) is None
    command = catalog.build(catalog.lookup("lineInfoV2"), {"line": "2"})
    exchange = http_exchange(book, phone, command)
    assert exchange.endpoint.base_url == "http://[2001:db8::5]:8080"
    assert exchange.endpoint.auth == "digest"
    assert exchange.endpoint.session_lifetime == 1500.0
    assert dict(exchange.query) == {"line": "2"}


def test_a_pinned_profile_beats_the_user_agent():
    book = routes(ACCESS)
    phone = tracked_phone(user_agent="PolycomVVX-VVX_411-UA/6.4.3.5018", profile="vvx-ucs5")
    capabilities = book.capabilities(phone)
    assert capabilities is not None and capabilities.profile.name == "vvx-ucs5"


def test_no_password_is_a_clear_refusal_naming_the_setting():
    book = routes("")
    phone = tracked_phone()
    command = catalog.build(catalog.lookup("holdCall"), {"Ref": "c@h"})
    with pytest.raises(TransportUnavailable) as info:
        http_exchange(book, phone, command)
    assert info.value.problems[0].field == "transport"
    assert "phone_credentials_file" in info.value.detail and "'1001'" in info.value.detail


def test_auto_is_the_default_request():
    assert choose_transport(catalog.lookup("holdCall"), VVX_640) == "http"
    assert choose_transport(catalog.lookup("holdCall"), VVX_642) == "sip"


@pytest.mark.parametrize("key", ["Ref", "Ref-A", "Ref-B"])
def test_each_ref_key_needs_6_4_2(key):
    with pytest.raises(NotSupportedByPhone):
        refs_call_id(VVX_640, {key: "a@h"})


def test_refusals_name_their_field():
    with pytest.raises(NotSupportedByPhone) as info:
        choose_transport(catalog.lookup("holdCall"), CCX_350, "auto")
    assert info.value.problems[0].field == "command_uri"
    for command, capabilities in [("warmTransfer", None), ("deviceInfoV2", None), ("holdCall", VVX_5)]:
        requested: Requested = "http" if command == "warmTransfer" else "sip"
        with pytest.raises(TransportUnavailable) as refused:
            choose_transport(catalog.lookup(command), capabilities, requested)
        assert refused.value.problems[0].field == "transport"
