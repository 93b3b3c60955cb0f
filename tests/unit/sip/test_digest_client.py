"""The client side of digest: answers to a NOTIFY's 401 / 407, checked against RFC 7616 §3.9.1."""

from __future__ import annotations

import pytest

from sipbridge.sip import digest

# RFC 7616 §3.9.1: the same request answered with MD5 and with SHA-256.
NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
EXPECTED = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}


def _challenge(algorithm: str, header: str = "WWW-Authenticate") -> digest.Challenge:
    value = (
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{NONCE}", opaque="{OPAQUE}"'
    )
    challenge = digest.parse_challenge(header, value)
    assert challenge is not None
    return challenge


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_response_matches_rfc7616_example(algorithm):
    name, value = digest.authorization(
        _challenge(algorithm),
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle of Life",
        cnonce=CNONCE,
    )
    assert name == "Authorization"
    params = digest.parse_authorization(value)
    assert params["response"] == EXPECTED[algorithm]
    assert (params["qop"], params["nc"], params["cnonce"]) == ("auth", "00000001", CNONCE)
    assert params["opaque"] == OPAQUE
    assert params["algorithm"] == algorithm


def test_our_answer_verifies_on_our_own_server_side():
    nonce = digest.make_nonce(b"k", 1000.0)
    [(header, value), _] = digest.challenges("sipbridge", nonce)
    challenge = digest.parse_challenge(header, value)
    assert challenge is not None and challenge.algorithm == "SHA-256"
    _, answer = digest.authorization(
        challenge, method="NOTIFY", uri="sip:1001@10.0.0.5", username="u", password="p", cnonce="c"
    )
    verdict = digest.verify(
        answer, method="NOTIFY", realm="sipbridge", secret=b"k", passwords={"u": "p"}, now=1000.0
    )
    assert verdict.ok


def test_proxy_challenge_is_answered_with_proxy_authorization():
    name, _ = digest.authorization(
        _challenge("MD5", "Proxy-Authenticate"),
        method="NOTIFY",
        uri="sip:a@b",
        username="u",
        password="p",
        cnonce="c",
    )
    assert name == "Proxy-Authorization"


def test_pick_takes_the_first_supported_challenge_in_order():
    headers = (
        ("WWW-Authenticate", 'Digest realm="r", nonce="n", algorithm=SHA-512-256'),
        ("WWW-Authenticate", 'Basic realm="r"'),
        ("WWW-Authenticate", 'Digest realm="r", nonce="n2", algorithm=MD5'),
        ("WWW-Authenticate", 'Digest realm="r", nonce="n3", algorithm=SHA-256'),
    )
    challenge = digest.pick_challenge(headers)
    assert challenge is not None
    assert (challenge.nonce, challenge.algorithm) == ("n2", "MD5")
    assert digest.pick_challenge((("Via", "x"),)) is None


def test_challenge_without_qop_uses_the_rfc2617_form():
    challenge = digest.parse_challenge("WWW-Authenticate", 'Digest realm="r", nonce="n"')
    assert challenge is not None and challenge.qop == ()
    _, value = digest.authorization(
        challenge, method="NOTIFY", uri="sip:a@b", username="u", password="p", cnonce="c"
    )
    params = digest.parse_authorization(value)
    assert "qop" not in params and "nc" not in params
    import hashlib

    ha1 = hashlib.md5(b"u:r:p").hexdigest()
    ha2 = hashlib.md5(b"NOTIFY:sip:a@b").hexdigest()
    assert params["response"] == hashlib.md5(f"{ha1}:n:{ha2}".encode()).hexdigest()
