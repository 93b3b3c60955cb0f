"""Digest authentication, sans-I/O (RFC 3261 §22, RFC 7616, RFC 8760): the server side for
REGISTER, and the client side for a NOTIFY a phone or a proxy challenges (401 / 407).

Written here because no maintained Python library verifies SIP digest as a server: aiohttp's
`DigestAuthMiddleware` is a client, and a client bound to aiohttp requests (it cannot answer a
SIP challenge, whose request is not an HTTP one). Kept to what a registrar needs: `qop=auth`,
SHA-256 and MD5 (both offered, SHA-256 first, RFC 8760 §2.4), and stateless nonces — a
timestamp signed with a secret — so no nonce table grows and a restart only makes old nonces stale.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

ALGORITHMS = {"SHA-256": hashlib.sha256, "MD5": hashlib.md5}
NONCE_LIFETIME = 300.0
_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]+)\s*(?:,|$)')


@dataclass(frozen=True, kw_only=True)
class DigestVerdict:
    ok: bool
    username: str | None = None
    stale: bool = False  # a valid response to an old nonce: challenge again with stale=true


def make_nonce(secret: bytes, now: float) -> str:
    stamp = f"{int(now):x}"
    signature = hmac.new(secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{stamp}.{signature}"


def _nonce_age(secret: bytes, nonce: str, now: float) -> float | None:
    stamp, _, signature = nonce.partition(".")
    expected = hmac.new(secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]
    if not hmac.compare_digest(signature, expected):
        return None
    try:
        return now - int(stamp, 16)
    except ValueError:
        return None


def challenges(
    realm: str,
    nonce: str,
    *,
    stale: bool = False,
    algorithms: tuple[str, ...] = tuple(ALGORITHMS),
) -> tuple[tuple[str, str], ...]:
    """WWW-Authenticate headers in order of preference (RFC 8760 §2.4: the UAC should take the
    first it supports; some take the first, whatever it is, hence a configurable list)."""
    extra = ", stale=true" if stale else ""
    return tuple(
        (
            "WWW-Authenticate",
            f'Digest realm="{realm}", nonce="{nonce}", algorithm={name}, qop="auth"{extra}',
        )
        for name in algorithms
    )


def parse_authorization(value: str) -> dict[str, str]:
    """The parameters of a `Digest ...` credentials header; {} when it is not one."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return {}
    params: dict[str, str] = {}
    for match in _PARAM.finditer(rest):
        name, raw = match.group(1).lower(), match.group(2)
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[name] = raw
    return params


def response_for(params: Mapping[str, str], *, method: str, password: str, algorithm: str) -> str:
    """RFC 7616 §3.4.1 with qop=auth: KD(H(A1), nonce:nc:cnonce:qop:H(A2))."""
    digest = ALGORITHMS[algorithm]

    def h(text: str) -> str:
        return digest(text.encode()).hexdigest()

    a1 = h(f"{params['username']}:{params['realm']}:{password}")
    a2 = h(f"{method}:{params['uri']}")
    return h(f"{a1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:{params['qop']}:{a2}")


def verify(
    header: str | None,
    *,
    method: str,
    realm: str,
    secret: bytes,
    passwords: Mapping[str, str],
    now: float,
) -> DigestVerdict:
    if not header:
        return DigestVerdict(ok=False)
    params = parse_authorization(header)
    needed = ("username", "realm", "nonce", "uri", "response", "nc", "cnonce", "qop")
    if any(name not in params for name in needed) or params["qop"] != "auth":
        return DigestVerdict(ok=False)
    algorithm = params.get("algorithm", "MD5").upper()
    password = passwords.get(params["username"])
    if algorithm not in ALGORITHMS or params["realm"] != realm or password is None:
        return DigestVerdict(ok=False)
    age = _nonce_age(secret, params["nonce"], now)
    if age is None or age < -5:
        return DigestVerdict(ok=False)
    expected = response_for(params, method=method, password=password, algorithm=algorithm)
    if not hmac.compare_digest(expected, params["response"].lower()):
        return DigestVerdict(ok=False)
    if age > NONCE_LIFETIME:
        return DigestVerdict(ok=False, username=params["username"], stale=True)
    return DigestVerdict(ok=True, username=params["username"])


# -- client side: answering a phone's (or a proxy's) challenge to our NOTIFY -----------------

# RFC 3261 §22.3 / §22.2: which header answers which challenge.
ANSWER_HEADER = {"WWW-Authenticate": "Authorization", "Proxy-Authenticate": "Proxy-Authorization"}


@dataclass(frozen=True, kw_only=True)
class Challenge:
    """One `Digest` challenge of a 401 (WWW-Authenticate) or 407 (Proxy-Authenticate)."""

    header: str
    realm: str
    nonce: str
    algorithm: str
    qop: tuple[str, ...]
    opaque: str | None = None


def parse_challenge(header: str, value: str) -> Challenge | None:
    """The challenge in one header value; None for another scheme or an algorithm we lack."""
    params = parse_authorization(value)
    if "realm" not in params or "nonce" not in params:
        return None
    algorithm = params.get("algorithm", "MD5").upper()  # RFC 7616 §3.3: absent means MD5
    if algorithm not in ALGORITHMS:
        return None
    qop = tuple(part.strip().lower() for part in params.get("qop", "").split(",") if part.strip())
    return Challenge(
        header=header,
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=algorithm,
        qop=qop,
        opaque=params.get("opaque"),
    )


def pick_challenge(headers: tuple[tuple[str, str], ...]) -> Challenge | None:
    """The first challenge we can answer, in the order sent (RFC 8760 §2.4: the server lists its
    preference first); a 407 is answered with Proxy-Authorization, a 401 with Authorization."""
    for name, value in headers:
        if name in ANSWER_HEADER:
            challenge = parse_challenge(name, value)
            if challenge is not None:
                return challenge
    return None


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def authorization(
    challenge: Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str,
    nc: int = 1,
) -> tuple[str, str]:
    """The (header name, value) that answers `challenge` (RFC 7616 §3.4, RFC 3261 §22.4).

    qop=auth when offered (auth-int is not: a NOTIFY body can be 20 KB and nobody asks for it);
    without qop, the RFC 2617 form KD(H(A1), nonce:H(A2)) that RFC 3261 §22.4 still allows.
    """
    params = {
        "username": username,
        "realm": challenge.realm,
        "nonce": challenge.nonce,
        "uri": uri,
        "nc": f"{nc:08x}",
        "cnonce": cnonce,
        "qop": "auth",
    }
    if "auth" in challenge.qop:
        response = response_for(
            params, method=method, password=password, algorithm=challenge.algorithm
        )
    else:
        digest = ALGORITHMS[challenge.algorithm]
        a1 = digest(f"{username}:{challenge.realm}:{password}".encode()).hexdigest()
        a2 = digest(f"{method}:{uri}".encode()).hexdigest()
        response = digest(f"{a1}:{challenge.nonce}:{a2}".encode()).hexdigest()
    parts = [
        f"username={_quoted(username)}",
        f"realm={_quoted(challenge.realm)}",
        f"nonce={_quoted(challenge.nonce)}",
        f"uri={_quoted(uri)}",
        f"response={_quoted(response)}",
        f"algorithm={challenge.algorithm}",
    ]
    if "auth" in challenge.qop:
        parts += ["qop=auth", f"nc={params['nc']}", f"cnonce={_quoted(cnonce)}"]
    if challenge.opaque is not None:
        parts.append(f"opaque={_quoted(challenge.opaque)}")
    return ANSWER_HEADER[challenge.header], "Digest " + ", ".join(parts)
