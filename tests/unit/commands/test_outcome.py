import pytest

from sipbridge.commands.outcome import accept_sip_answer
from sipbridge.errors import PhoneRejected, PhoneTimeout, PhoneUnreachable
from sipbridge.sip.action_uri import SipAnswer


def test_2xx_from_the_phone_is_accepted():
    answer = SipAnswer(status=202, reason="Accepted", from_wire=True)
    assert accept_sip_answer(answer) is answer


def test_phone_refusal_carries_status_and_reason():
    with pytest.raises(PhoneRejected) as info:
        accept_sip_answer(SipAnswer(status=403, reason="Forbidden", from_wire=True))
    assert (info.value.sip_status, info.value.sip_reason) == (403, "Forbidden")


def test_408_from_the_wire_is_the_phones_answer_but_local_408_is_a_timeout():
    with pytest.raises(PhoneRejected):
        accept_sip_answer(SipAnswer(status=408, reason="Request Timeout", from_wire=True))
    with pytest.raises(PhoneTimeout) as info:
        accept_sip_answer(SipAnswer(status=408, reason="Request Timeout", from_wire=False))
    assert info.value.sent is True  # Timer F: it left, the phone may have acted on it


def test_local_failure_is_unreachable():
    with pytest.raises(PhoneUnreachable):
        accept_sip_answer(SipAnswer(status=503, reason="Connection refused", from_wire=False))


def test_failed_tls_verification_says_so():
    answer = SipAnswer(
        status=503,
        reason="SSL certificate verification error (PJSIP_TLS_ECERTVERIF)",
        from_wire=False,
    )
    with pytest.raises(PhoneUnreachable, match=r"TLS verification of the phone failed.*tls_ca_file"):
        accept_sip_answer(answer)


def refusal_raw(status, reason, *headers):
    lines = [
        f"SIP/2.0 {status} {reason}",
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1",
        "From: <sip:sipbridge@127.0.0.1>;tag=a",
        "To: <sip:1001@127.0.0.1>;tag=b",
        "Call-ID: c1@127.0.0.1",
        "CSeq: 1 NOTIFY",
        *headers,
        "Content-Length: 0",
    ]
    return "\r\n".join(lines) + "\r\n\r\n"


def test_a_phones_503_keeps_its_retry_after():
    from sipbridge.errors import PhoneUnavailable

    raw = refusal_raw(503, "Service Unavailable", "Retry-After: 30 (busy);duration=60")
    with pytest.raises(PhoneUnavailable) as info:
        accept_sip_answer(SipAnswer(status=503, reason="Service Unavailable", from_wire=True, raw=raw))
    assert info.value.retry_after == 30


def test_a_challenge_and_allow_are_kept_one_line_each():
    raw = refusal_raw(
        401,
        "Unauthorized",
        'WWW-Authenticate: Digest realm="a", nonce="1", algorithm=SHA-256',
        'WWW-Authenticate: Digest realm="a", nonce="2", algorithm=MD5',
        "Allow: INVITE, ACK",
        "Allow: BYE",
    )
    with pytest.raises(PhoneRejected) as info:
        accept_sip_answer(SipAnswer(status=401, reason="Unauthorized", from_wire=True, raw=raw))
    assert info.value.headers == (
        ("WWW-Authenticate", 'Digest realm="a", nonce="1", algorithm=SHA-256'),
        ("WWW-Authenticate", 'Digest realm="a", nonce="2", algorithm=MD5'),
        ("Allow", "INVITE, ACK, BYE"),
    )
    assert info.value.retry_after is None


def test_an_unparseable_answer_keeps_its_status_only():
    with pytest.raises(PhoneRejected) as info:
        accept_sip_answer(SipAnswer(status=486, reason="Busy", from_wire=True, raw="garbage"))
    assert (info.value.sip_status, info.value.headers, info.value.retry_after) == (486, (), None)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (300, "Multiple Choices"),
        (302, "Moved Temporarily"),
        (400, "Bad Request"),
        (404, "Not Found"),
        (481, "Call/Transaction Does Not Exist"),
        (486, "Busy Here"),
        (488, "Not Acceptable Here"),
        (499, "Whatever"),
        (500, "Server Internal Error"),
        (503, "Service Unavailable"),
        (599, "Whatever"),
        (600, "Busy Everywhere"),
        (603, "Decline"),
        (699, "Whatever"),
    ],
)
def test_every_non_2xx_final_answer_from_the_wire_is_the_phones_refusal(status, reason):
    # Issue #23: a phone's 486 taken as success would answer the caller 200 and record "held".
    with pytest.raises(PhoneRejected) as info:
        accept_sip_answer(SipAnswer(status=status, reason=reason, from_wire=True))
    assert (info.value.sip_status, info.value.sip_reason) == (status, reason)


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_every_2xx_is_accepted_as_it_came(status):
    answer = SipAnswer(status=status, reason=f"R{status}", from_wire=True)
    assert accept_sip_answer(answer) is answer


def test_a_local_failure_says_what_happened():
    with pytest.raises(PhoneTimeout) as timeout:
        accept_sip_answer(SipAnswer(status=408, reason="Request Timeout", from_wire=False))
    assert timeout.value.detail == (
        "the NOTIFY was sent and the phone never answered it (SIP Timer F); its outcome is not known"
    )
    assert timeout.value.sent
    with pytest.raises(PhoneUnreachable) as unreachable:
        accept_sip_answer(SipAnswer(status=503, reason="Connection refused", from_wire=False))
    assert unreachable.value.detail == "the NOTIFY could not be sent: 503 Connection refused"
