"""The two boundary tables (HTTP: api/problems.py, SIP: pbx/relay.py SIP_STATUS) cover every error
in errors.py, and agree on Retry-After."""

import inspect

import pytest

from sipbridge import errors
from sipbridge.api import problems
from sipbridge.pbx.relay import SIP_STATUS, refusal, rule_for

ERRORS = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, errors.SipBridgeError)
]


def sample(cls, retry_after=None):
    if issubclass(cls, errors.InvalidInput):
        exc = cls([errors.FieldProblem(field="f", message="m")])
    elif issubclass(cls, errors.QueueFull | errors.AuthThrottled):
        exc = cls("full", retry_after=retry_after or 5)
    elif issubclass(cls, errors.PhoneRejected):
        exc = cls("no", sip_status=503, sip_reason="Service Unavailable", retry_after=retry_after)
    elif issubclass(cls, errors.PhoneRefused):
        exc = cls("no", http_status=500, poly_status=5000, poly_meaning="failed")
    elif cls is errors.StateConflict:
        exc = cls("held already", state="held")
    elif cls is errors.PhoneTimeout:
        exc = cls("late", sent=True)
    else:
        exc = cls("detail")
    return exc


@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
def test_every_error_has_a_row_of_its_own_lineage_in_both_tables(cls):
    http_rows = [row for row in problems.STATUS if issubclass(cls, row[0])]
    assert http_rows, f"{cls.__name__} has no row in api/problems.py"
    sip_rows = [rule for rule in SIP_STATUS if issubclass(cls, rule.error)]
    assert sip_rows, f"{cls.__name__} has no row in pbx/relay.py SIP_STATUS"
    assert all(rule.why for rule in sip_rows)


@pytest.mark.parametrize("retry_after", [None, 30])
@pytest.mark.parametrize("cls", ERRORS, ids=lambda cls: cls.__name__)
def test_both_boundaries_agree_on_retry_after(cls, retry_after):
    exc = sample(cls, retry_after)
    http = problems.from_error(exc).headers.get("Retry-After")
    sip = dict(refusal(exc).headers).get("Retry-After")
    assert http == sip
    assert (http is None) == (exc.retry_after is None)


def phone_says(status, reason, *headers, retry_after=None):
    cls = errors.PhoneUnavailable if status == 503 else errors.PhoneRejected
    return cls(
        f"the phone answered {status} {reason}",
        sip_status=status,
        sip_reason=reason,
        headers=headers,
        retry_after=retry_after,
    )


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (phone_says(401, "Unauthorized", ("WWW-Authenticate", 'Digest realm="p"')), 403),
        (phone_says(407, "Proxy Auth", ("Proxy-Authenticate", 'Digest realm="p"')), 403),
        (phone_says(408, "Request Timeout"), 504),
        (phone_says(503, "Service Unavailable", retry_after=9), 480),
        (phone_says(302, "Moved Temporarily"), 502),
        (phone_says(405, "Method Not Allowed"), 502),  # no Allow: an invalid answer
        (phone_says(405, "Method Not Allowed", ("Allow", "INVITE")), 405),
        (phone_says(420, "Bad Extension"), 502),
        (phone_says(489, "Bad Event", ("Allow-Events", "talk")), 489),
        (phone_says(603, "Decline"), 603),
        (errors.PhoneTimeout("late", sent=True), 504),
        (errors.QueueFull("full", retry_after=5), 480),
        (errors.StoreError("db"), 500),
    ],
)
def test_what_the_pbx_gets(exc, status):
    reply = refusal(exc)
    assert reply.status == status, rule_for(exc).why
    names = {name for name, _ in reply.headers}
    # Never a challenge or a 408 / 503 that would mislead the PBX (RFC 3261 §16.7, RFC 4320).
    assert not names & {"WWW-Authenticate", "Proxy-Authenticate"}
    assert reply.status not in (408, 503)
    if reply.status == 405:
        assert dict(reply.headers)["Allow"] == "INVITE"
    if reply.status == 489:
        assert dict(reply.headers)["Allow-Events"] == "talk"
