import pytest

from sipbridge.sip import digest

# RFC 7616 §3.9.1: the published example, for both algorithms.
RFC_EXAMPLE = {
    "username": "Mufasa",
    "realm": "http-auth@example.org",
    "uri": "/dir/index.html",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "nc": "00000001",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    "qop": "auth",
}


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_response_matches_rfc_7616_example(algorithm, expected):
    got = digest.response_for(RFC_EXAMPLE, method="GET", password="Circle of Life", algorithm=algorithm)
    assert got == expected


def authorization(nonce, *, password="s3cret", algorithm="SHA-256", user="1001", realm="sipbridge"):
    params = {"username": user, "realm": realm, "uri": "sip:127.0.0.1", "nonce": nonce,
              "nc": "00000001", "cnonce": "abc", "qop": "auth"}
    response = digest.response_for(params, method="REGISTER", password=password, algorithm=algorithm)
    fields = ", ".join(f'{k}="{v}"' for k, v in params.items() if k not in ("nc", "qop"))
    return f"Digest {fields}, nc=00000001, qop=auth, algorithm={algorithm}, response=\"{response}\""


SECRET = b"k" * 32
PASSWORDS = {"1001": "s3cret"}


def check(header, now=1000.0):
    return digest.verify(header, method="REGISTER", realm="sipbridge", secret=SECRET,
                         passwords=PASSWORDS, now=now)


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_valid_credentials_pass(algorithm):
    nonce = digest.make_nonce(SECRET, 1000.0)
    verdict = check(authorization(nonce, algorithm=algorithm))
    assert (verdict.ok, verdict.username) == (True, "1001")


def test_wrong_password_forged_nonce_and_old_nonce():
    nonce = digest.make_nonce(SECRET, 1000.0)
    assert not check(authorization(nonce, password="guess")).ok
    assert not check(authorization(nonce, realm="other")).ok
    assert not check(authorization(digest.make_nonce(b"x" * 32, 1000.0))).ok
    assert not check(None).ok and not check("Basic abc").ok
    stale = check(authorization(nonce), now=1000.0 + digest.NONCE_LIFETIME + 1)
    assert (stale.ok, stale.stale) == (False, True)


def test_challenges_offer_sha256_first():
    headers = digest.challenges("sipbridge", "n", stale=True)
    assert [h[1].split("algorithm=")[1].split(",")[0] for h in headers] == ["SHA-256", "MD5"]
    assert all("stale=true" in value and 'qop="auth"' in value for _, value in headers)


# -- issue #23: what mutation testing found unguarded --------------------------------------------


def test_without_an_algorithm_parameter_md5_is_meant():
    # RFC 7616 §3.4: an absent algorithm means MD5.
    nonce = digest.make_nonce(SECRET, 1000.0)
    header = authorization(nonce, algorithm="MD5").replace(", algorithm=MD5", "")
    assert "algorithm" not in header
    assert check(header).ok
    sha = authorization(nonce, algorithm="SHA-256").replace(", algorithm=SHA-256", "")
    assert not check(sha).ok


def test_a_nonce_is_good_up_to_its_lifetime_and_five_seconds_early():
    nonce = digest.make_nonce(SECRET, 1000.0)
    header = authorization(nonce)
    assert check(header, now=1000.0 + digest.NONCE_LIFETIME).ok
    stale = check(header, now=1000.0 + digest.NONCE_LIFETIME + 1)
    assert (stale.ok, stale.stale, stale.username) == (False, True, "1001")
    assert check(header, now=1000.0 - 5).ok  # another worker's clock a little ahead
    assert not check(header, now=1000.0 - 6).ok


def test_challenges_are_exact_and_fresh_by_default():
    assert digest.challenges("sipbridge", "n1", algorithms=("MD5",)) == (
        ("WWW-Authenticate", 'Digest realm="sipbridge", nonce="n1", algorithm=MD5, qop="auth"'),
    )
    [(_, stale)] = digest.challenges("r", "n2", stale=True, algorithms=("SHA-256",))
    assert stale == 'Digest realm="r", nonce="n2", algorithm=SHA-256, qop="auth", stale=true'


def test_quoted_values_lose_their_escapes():
    params = digest.parse_authorization(r'Digest username="a\"b\\c", realm="x", nc=00000001')
    assert params == {"username": 'a"b\\c', "realm": "x", "nc": "00000001"}
