import dataclasses

import pytest

from sipbridge.sip.message import parse_message
from sipbridge.tracker import registrar
from sipbridge.tracker.models import Phone

NOW = 1_700_000_000.0
UA = "PolycomVVX-VVX_450-UA/6.4.3.5018"


def register(*headers: str, to="<sip:1001@pbx.example.com>", cseq=2, call_id="reg-1@10.0.0.5"):
    lines = [
        "REGISTER sip:pbx.example.com SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-kam",
        "Via: SIP/2.0/TCP 10.0.0.5:5062;branch=z9hG4bK-phone;received=198.51.100.7;rport=40123",
        "From: <sip:1001@pbx.example.com>;tag=x",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        f"User-Agent: {UA}",
        *headers,
        "Content-Length: 0",
    ]
    return parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())


def phone(**changes):
    base = Phone(
        id="1001",
        aor="sip:1001@pbx.example.com",
        contact="sip:1001@10.0.0.5:5062",
        transport="tcp",
        user_agent=UA,
        registered_until=NOW + 100,
        updated_at=NOW,
        learned_from="register",
        registration_call_id="reg-1@10.0.0.5",
        registration_cseq=2,
    )
    return dataclasses.replace(base, **changes)


def test_binding_from_a_replicated_register_reads_the_phones_own_via():
    decision = registrar.decide(
        register("Contact: <sip:1001@10.0.0.5:5062;transport=tcp>", "Expires: 300"),
        current=None,
        now=NOW,
    )
    assert decision.status == 200
    binding = decision.bind
    assert binding is not None
    assert (binding.phone_id, binding.aor) == ("1001", "sip:1001@pbx.example.com")
    assert binding.contact == "sip:1001@10.0.0.5:5062;transport=tcp"
    assert (binding.expires, binding.transport) == (300, "tcp")
    assert binding.received == "198.51.100.7:40123"
    assert binding.user_agent == UA
    assert ("Contact", "<sip:1001@10.0.0.5:5062;transport=tcp>;expires=300") in decision.headers


def test_contact_expires_param_beats_the_header_and_is_capped():
    decision = registrar.decide(
        register("Contact: <sip:1001@10.0.0.5>;expires=999999999", "Expires: 60"),
        current=None,
        now=NOW,
    )
    assert decision.bind is not None and decision.bind.expires == registrar.MAX_EXPIRES


def test_expires_zero_and_wildcard_remove():
    for headers in (("Contact: <sip:1001@10.0.0.5:5062>;expires=0",), ("Contact: *", "Expires: 0")):
        decision = registrar.decide(register(*headers, cseq=3), current=phone(), now=NOW)
        assert (decision.status, decision.unbind, decision.bind) == (200, "1001", None)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (("Contact: *", "Expires: 5"), 400),
        (("Contact: *", "Contact: <sip:1001@h>", "Expires: 0"), 400),
        (("Contact: <sip:1001@h>;expires=10",), 423),
        (("Contact: <sip:1001@h>;expires=abc",), 400),
    ],
)
def test_refusals(headers, status):
    decision = registrar.decide(register(*headers), current=None, now=NOW)
    assert decision.status == status and decision.bind is None and decision.unbind is None
    if status == 423:
        assert ("Min-Expires", str(registrar.MIN_EXPIRES)) in decision.headers


def test_out_of_order_refresh_is_refused():
    decision = registrar.decide(
        register("Contact: <sip:1001@h>", cseq=2), current=phone(registration_cseq=2), now=NOW
    )
    assert decision.status == 500
    ok = registrar.decide(
        register("Contact: <sip:1001@h>", cseq=2, call_id="new"),
        current=phone(registration_cseq=2),
        now=NOW,
    )
    assert ok.status == 200 and ok.bind is not None


def test_query_lists_the_current_binding():
    decision = registrar.decide(register(cseq=3), current=phone(), now=NOW)
    assert decision.status == 200 and decision.bind is None
    assert ("Contact", "<sip:1001@10.0.0.5:5062>;expires=100") in decision.headers


def test_aor_without_a_trackable_user_is_404():
    decision = registrar.decide(
        register("Contact: <sip:h>", to="<sip:pbx.example.com>"), current=None, now=NOW
    )
    assert decision.status == 404


def test_a_wildcard_in_a_contact_list_is_malformed_already():
    from sipbridge.sip.message import SipParseError

    with pytest.raises(SipParseError):
        register("Contact: *, <sip:1001@h>", "Expires: 0")


def test_a_lower_cseq_on_the_same_call_id_is_refused_and_binds_nothing():
    # §10.3 step 7: a replayed or delayed REGISTER must not roll the binding back.
    decision = registrar.decide(
        register("Contact: <sip:1001@old-host>", cseq=1),
        current=phone(registration_cseq=2),
        now=NOW,
    )
    assert decision.status == 500
    assert decision.bind is None and decision.unbind is None
    higher = registrar.decide(
        register("Contact: <sip:1001@h>", cseq=3), current=phone(registration_cseq=2), now=NOW
    )
    assert higher.status == 200 and higher.bind is not None


# -- issue #23: what mutation testing found unguarded --------------------------------------------


def register_via(*vias: str, headers=(), cseq=2):
    lines = [
        "REGISTER sip:pbx.example.com SIP/2.0",
        *(f"Via: {via}" for via in vias),
        "From: <sip:1001@pbx.example.com>;tag=x",
        "To: <sip:1001@pbx.example.com>",
        "Call-ID: reg-9@h",
        f"CSeq: {cseq} REGISTER",
        *headers,
        "Content-Length: 0",
    ]
    return parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())


def date_header():
    from email.utils import formatdate

    return ("Date", formatdate(NOW, usegmt=True))


def test_every_answer_names_its_reason_and_carries_the_date():
    cases = [
        (register("Contact: <sip:1001@h>", cseq=2), phone(), (500, "Out Of Order")),
        (register("Contact: <sip:1001@h>;expires=30", cseq=3), None, (423, "Interval Too Brief")),
        (register("Contact: *", "Expires: 5", cseq=3), None, (400, "Invalid Wildcard")),
        (register("Contact: <sip:1001@h>", cseq=3), None, (200, "OK")),
        (register(cseq=3), phone(), (200, "OK")),
        (register("Contact: *", "Expires: 0", cseq=3), phone(), (200, "OK")),
        (register("Contact: <sip:1001@h>;expires=0", cseq=3), phone(), (200, "OK")),
        (register("Contact: <sip:1001@h>;expires=0", cseq=3), None, (200, "OK")),
    ]
    for request, current, expected in cases:
        decision = registrar.decide(request, current=current, now=NOW)
        assert (decision.status, decision.reason) == expected
        if decision.status == 200:
            assert date_header() in decision.headers
    too_long = registrar.decide(register(to=f"<sip:{'1' * 65}@h>"), current=None, now=NOW)
    assert (too_long.status, too_long.reason) == (404, "Not Found")
    bad = registrar.decide(register("Contact: <sip:1001@h>;expires=soon"), current=None, now=NOW)
    assert (bad.status, bad.reason) == (400, "Invalid Expires")


def test_out_of_order_asks_to_retry_in_a_second():
    decision = registrar.decide(register("Contact: <sip:1001@h>", cseq=2), current=phone(), now=NOW)
    assert ("Retry-After", "1") in decision.headers


def test_the_binding_keeps_the_registrations_call_id_and_cseq():
    decision = registrar.decide(register("Contact: <sip:1001@h>", cseq=7), current=None, now=NOW)
    assert decision.bind is not None
    assert (decision.bind.call_id, decision.bind.cseq) == ("reg-1@10.0.0.5", 7)
    assert decision.bind.user_agent == UA


def test_only_zero_expiry_contacts_unbind_only_a_known_phone():
    removing = register("Contact: <sip:1001@h>;expires=0", cseq=3)
    assert registrar.decide(removing, current=phone(), now=NOW).unbind == "1001"
    assert registrar.decide(removing, current=None, now=NOW).unbind is None
    # A removal before a binding in the same REGISTER: the binding counts.
    mixed = register(
        "Contact: <sip:1001@old>;expires=0", "Contact: <sip:1001@new>;expires=600", cseq=3
    )
    decision = registrar.decide(mixed, current=phone(), now=NOW)
    assert decision.bind is not None and decision.bind.contact == "sip:1001@new"
    assert decision.unbind is None


def test_the_minimum_expiry_itself_is_taken():
    request = register(f"Contact: <sip:1001@h>;expires={registrar.MIN_EXPIRES}", cseq=3)
    decision = registrar.decide(request, current=None, now=NOW)
    assert decision.status == 200 and decision.bind is not None
    assert decision.bind.expires == registrar.MIN_EXPIRES


def test_expires_has_at_most_ten_digits():
    ten = registrar.decide(
        register("Contact: <sip:1001@h>;expires=4294967295"), current=None, now=NOW
    )
    assert ten.status == 200 and ten.bind is not None
    assert ten.bind.expires == registrar.MAX_EXPIRES
    eleven = registrar.decide(
        register("Contact: <sip:1001@h>;expires=10000000000"), current=None, now=NOW
    )
    assert eleven.status == 400


def test_a_query_lists_nothing_for_an_unknown_or_expired_phone():
    for current in (None, phone(registered_until=NOW - 1)):
        decision = registrar.decide(register(cseq=3), current=current, now=NOW)
        assert decision.status == 200
        assert [h for h in decision.headers if h[0] == "Contact"] == []


@pytest.mark.parametrize(
    ("via", "transport", "received"),
    [
        ("SIP/2.0/TLS [2001:db8::5]:5061;branch=z9hG4bK-1", "tls", "[2001:db8::5]:5061"),
        ("SIP/2.0/UDP [2001:db8::5];branch=z9hG4bK-1", "udp", "[2001:db8::5]:5060"),
        ("SIP/2.0/TCP 10.0.0.5;branch=z9hG4bK-1", "tcp", "10.0.0.5:5060"),
        ("SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK-1;rport", "udp", "10.0.0.5:5070"),
        ("SIP/2.0/SCTP 10.0.0.5:5070;branch=z9hG4bK-1", "udp", "10.0.0.5:5070"),
    ],
)
def test_the_phones_address_from_its_via(via, transport, received):
    request = register_via(via, headers=("Contact: <sip:1001@h>",))
    decision = registrar.decide(request, current=None, now=NOW)
    assert decision.bind is not None
    assert (decision.bind.transport, decision.bind.received) == (transport, received)


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_the_contacts_transport_beats_the_vias(transport):
    request = register_via(
        "SIP/2.0/SCTP 10.0.0.5:5070;branch=z9hG4bK-1",
        headers=(f"Contact: <sip:1001@10.0.0.5:5070;transport={transport}>",),
    )
    decision = registrar.decide(request, current=None, now=NOW)
    assert decision.bind is not None and decision.bind.transport == transport
