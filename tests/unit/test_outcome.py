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
    with pytest.raises(PhoneTimeout):
        accept_sip_answer(SipAnswer(status=408, reason="Request Timeout", from_wire=False))


def test_local_failure_is_unreachable():
    with pytest.raises(PhoneUnreachable):
        accept_sip_answer(SipAnswer(status=503, reason="Connection refused", from_wire=False))


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
    assert timeout.value.detail == "the phone did not answer the NOTIFY (SIP transaction timed out)"
    with pytest.raises(PhoneUnreachable) as unreachable:
        accept_sip_answer(SipAnswer(status=503, reason="Connection refused", from_wire=False))
    assert unreachable.value.detail == "the NOTIFY could not be sent: 503 Connection refused"
