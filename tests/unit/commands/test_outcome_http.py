"""Poly status codes over HTTP -> results (sipbridge/commands/outcome.py)."""

import json

import pytest

from sipbridge.commands.outcome import POLY_STATUS, accept_http_answer
from sipbridge.errors import PhoneAuthFailed, PhoneBusy, PhoneRefused
from sipbridge.phone.http import HttpAnswer


def answer(status, body, content_type="application/json", reason="OK"):
    raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
    return HttpAnswer(
        status=status, reason=reason, body=raw, content_type=content_type
    )


def test_success_keeps_code_meaning_and_data():
    outcome = accept_http_answer(answer(200, {"Status": "2000", "data": {"State": "Idle"}}))
    assert (outcome.http_status, outcome.poly_status, outcome.poly_meaning) == (
        200,
        2000,
        "success",
    )
    assert outcome.data == {"State": "Idle"}


def test_top_level_outputs_and_numeric_status():
    outcome = accept_http_answer(answer(200, {"Status": 2000, "CurrentState": "PowerOn"}))
    assert (outcome.poly_status, outcome.data) == (2000, {"CurrentState": "PowerOn"})
    assert accept_http_answer(answer(200, {"Status": "2000"})).data is None


def test_a_binary_answer_comes_back_as_base64():
    outcome = accept_http_answer(answer(200, b"\x89PNG", content_type="image/png"))
    assert outcome.data == {"content_type": "image/png", "base64": "iVBORw=="}


@pytest.mark.parametrize(
    "code",
    [4000, 4002, 4003, 4004, 4005, 4006, 4007, 4008, 4009, 4010, 4011, 4400, 4403, 5000, 5500],
)
def test_failure_codes_are_refusals_with_their_meaning(code):
    with pytest.raises(PhoneRefused) as info:
        accept_http_answer(answer(400, {"Status": str(code)}, reason="Bad Request"))
    assert not isinstance(info.value, PhoneBusy)
    assert (info.value.poly_status, info.value.poly_meaning) == (code, POLY_STATUS[code])
    assert str(code) in info.value.detail and POLY_STATUS[code] in info.value.detail


def test_a_failure_code_with_http_200_is_still_a_refusal():
    with pytest.raises(PhoneRefused):
        accept_http_answer(answer(200, {"Status": "4007"}))


@pytest.mark.parametrize(
    ("status", "body"), [(403, {"Status": "4001"}), (200, {"Status": "4001"}), (403, b"")]
)
def test_busy_is_its_own_result(status, body):
    with pytest.raises(PhoneBusy):
        accept_http_answer(
            answer(status, body, content_type="application/json" if body else "text/html")
        )


def test_401_is_an_auth_failure_and_4403_a_refusal():
    with pytest.raises(PhoneAuthFailed):
        accept_http_answer(answer(401, {"Status": "4403"}))
    with pytest.raises(PhoneRefused) as info:
        accept_http_answer(answer(403, {"Status": "4403"}))
    assert not isinstance(info.value, PhoneBusy)


def test_every_code_of_the_manual_has_a_meaning():
    assert set(POLY_STATUS) == {2000, *range(4000, 4012), 4400, 4403, 5000, 5500}


def test_no_poly_code_means_no_meaning_and_an_unknown_one_says_so():
    bare = accept_http_answer(answer(204, b"", content_type=""))
    assert (bare.poly_status, bare.poly_meaning, bare.data) == (None, None, None)
    with pytest.raises(PhoneRefused) as info:
        accept_http_answer(answer(200, {"Status": "4999"}))
    assert (info.value.poly_status, info.value.poly_meaning) == (4999, "unknown Poly status")
    assert info.value.detail == "the phone answered HTTP 200 OK, Poly status 4999: unknown Poly status"


def test_a_refusal_detail_names_the_http_status_even_without_a_reason():
    with pytest.raises(PhoneRefused) as info:
        accept_http_answer(answer(500, b"oops", content_type="text/plain", reason=""))
    assert info.value.detail == "the phone answered HTTP 500"
    assert (info.value.http_status, info.value.poly_status, info.value.poly_meaning) == (
        500,
        None,
        None,
    )


def test_http_300_is_not_success_even_with_poly_2000():
    with pytest.raises(PhoneRefused) as info:
        accept_http_answer(answer(300, {"Status": "2000"}, reason="Multiple Choices"))
    assert info.value.http_status == 300


def test_a_json_answer_that_is_not_an_object_comes_back_as_it_was():
    outcome = accept_http_answer(answer(200, [1, 2]))
    assert outcome.poly_status is None
    assert outcome.data == {"content_type": "application/json", "base64": "WzEsIDJd"}


def test_an_auth_failure_points_at_the_credentials_settings():
    with pytest.raises(PhoneAuthFailed) as info:
        accept_http_answer(answer(401, b"", content_type="text/html", reason="Unauthorized"))
    assert "phone_credentials_file" in info.value.detail
    assert "httpd.rest.auth" in info.value.detail
