import pytest

from sipbridge.errors import PhoneRejected, PhoneTimeout, PhoneUnreachable
from sipbridge.outcome import accept_sip_answer
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
