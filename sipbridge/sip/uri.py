"""SIP and SIPS URIs (RFC 3261 §19.1, §25.1; RFC 5118 IPv6 references) and the address grammar
around them: name-addr / addr-spec (§20.10, §20.20, §20.39) and header parameters (§7.3.1).

This module is the bottom layer of the sans-I/O SIP parser: it imports nothing from the rest of
sipbridge, so `SipParseError` and the lexical helpers live here and `_parser` builds on them.
Every scanner below is a single left-to-right pass or a regular expression whose alternatives
start with disjoint characters, so work is linear in the input (no catastrophic backtracking).

URI components are kept in their escaped wire form (`%41` stays `%41`) so that `str(uri)`
renders exactly what was parsed; unescape with `urllib.parse.unquote` where a comparison needs it
(RFC 3261 §19.1.4).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["SipParseError", "SipUri", "parse_name_addr", "parse_uri"]

MAX_URI_LENGTH = 16384
"""Longest URI text accepted; the same bound as one header field, so work stays bounded."""


SipTransport = Literal["udp", "tcp", "tls"]  # how sipbridge reaches a phone over SIP


class SipParseError(ValueError):
    """Input that RFC 3261 calls malformed (a 400 Bad Request, §21.4.1).

    `reason` is a short fixed ASCII phrase that never echoes the input, so it is safe to put in a
    reason phrase or a Warning header (§20.43) without risking header injection.
    """

    reason: str

    def __init__(self, reason: str) -> None:
        safe = "".join(ch if " " <= ch <= "~" else "?" for ch in reason)[:120]
        super().__init__(safe)
        self.reason = safe


# -- character classes (RFC 3261 §25.1) -------------------------------------------------------

_ALPHA = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_DIGIT = frozenset("0123456789")
_ALNUM = _ALPHA | _DIGIT
_LABEL_CHARS = _ALNUM | {"-"}
_HEX = frozenset("0123456789abcdefABCDEF")
_IPV6_CHARS = _HEX | {":", "."}

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN_CLASS = r"A-Za-z0-9\-.!%*_+`'~"
_TOKEN_RE = re.compile(f"[{_TOKEN_CLASS}]+")
_TOKEN_RUN = re.compile(f"[{_TOKEN_CLASS}]*")
# gen-value = token / host / quoted-string; ':' '[' ']' admit IPv6 references and, for Via
# received (RFC 5118 §4.5), bare IPv6 addresses. Validated further in `_check_gen_value`.
_GEN_VALUE_RUN = re.compile(f"[{_TOKEN_CLASS}:\\[\\]]*")
_WS_RUN = re.compile(r"[ \t]*")

# quoted-string = DQUOTE *(qdtext / quoted-pair) DQUOTE; qdtext excludes CTLs but not HT;
# quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F). The two alternatives start with different
# characters, so the match is deterministic.
_QUOTED_RE = re.compile(r'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*"')
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.DOTALL)

_ESC = "%[0-9A-Fa-f]{2}"
_UNRESERVED_CLASS = r"A-Za-z0-9\-_.!~*'()"
# user = 1*(unreserved / escaped / user-unreserved); user-unreserved = & = + $ , ; ? /
_USER_RE = re.compile(f"(?:[{_UNRESERVED_CLASS}&=+$,;?/]|{_ESC})+")
# password = *(unreserved / escaped / & = + $ ,)
_PASSWORD_RE = re.compile(f"(?:[{_UNRESERVED_CLASS}&=+$,]|{_ESC})*")
# paramchar = param-unreserved / unreserved / escaped; param-unreserved = [ ] / : & + $
_PARAMCHARS_RE = re.compile(f"(?:[{_UNRESERVED_CLASS}\\[\\]/:&+$]|{_ESC})+")
# hname = 1*(hnv-unreserved / unreserved / escaped); hnv-unreserved = [ ] / ? : + $
_HNAME_RE = re.compile(f"(?:[{_UNRESERVED_CLASS}\\[\\]/?:+$]|{_ESC})+")
_HVALUE_RE = re.compile(f"(?:[{_UNRESERVED_CLASS}\\[\\]/?:+$]|{_ESC})*")
# absoluteURI (RFC 2396 via RFC 3261 §25.1): scheme ":" 1*(uric / "/"), brackets per RFC 2732.
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_OPAQUE_RE = re.compile(f"(?:[{_UNRESERVED_CLASS};/?:@&=+$,\\[\\]]|{_ESC})+")
_BAD_URI_CHAR = re.compile(r"[\x00-\x20\x7f]")


def _is_token(text: str) -> bool:
    return _TOKEN_RE.fullmatch(text) is not None


def _skip_ws(text: str, i: int) -> int:
    m = _WS_RUN.match(text, i)
    return m.end() if m else i


def _token_end(text: str, i: int) -> int:
    m = _TOKEN_RUN.match(text, i)
    return m.end() if m else i


def _quoted_end(text: str, i: int) -> int:
    """Index just past the quoted-string starting at `text[i] == '"'` (RFC 3261 §25.1)."""
    m = _QUOTED_RE.match(text, i)
    if m is None:
        raise SipParseError("Unterminated or malformed quoted string")
    return m.end()


def _unquote(quoted: str) -> str:
    return _QUOTED_PAIR_RE.sub(r"\1", quoted[1:-1])


def _split_top_level(text: str, *, strict: bool = True) -> list[str]:
    """Split a header value on commas that are outside quoted strings and <...> (§7.3.1).

    With `strict=False` an unbalanced quote or bracket returns the whole value unsplit instead of
    raising, for opaque headers nobody has validated.
    """
    parts: list[str] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            m = _QUOTED_RE.match(text, i)
            if m is None:
                if strict:
                    raise SipParseError("Unterminated or malformed quoted string")
                return [text.strip(" \t")]
            i = m.end()
            continue
        if ch == "<":
            close = text.find(">", i + 1)
            if close < 0:
                if strict:
                    raise SipParseError("Unbalanced < in header value")
                return [text.strip(" \t")]
            i = close + 1
            continue
        if ch == ",":
            parts.append(text[start:i].strip(" \t"))
            start = i + 1
        i += 1
    parts.append(text[start:].strip(" \t"))
    return parts


# -- hosts -------------------------------------------------------------------------------------


def _is_ipv4(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(
        0 < len(p) <= 3 and set(p) <= _DIGIT and int(p) <= 255 for p in parts
    )


def _is_ipv6_address(text: str) -> bool:
    """IPv6address per RFC 5118 §4.10 (the corrected ABNF); zone IDs are not allowed."""
    if not text or len(text) > 45 or not set(text) <= _IPV6_CHARS or ":" not in text:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _is_ipv6_reference(text: str) -> bool:
    return len(text) > 2 and text[0] == "[" and text[-1] == "]" and _is_ipv6_address(text[1:-1])


def _is_hostname(text: str) -> bool:
    """hostname = *(domainlabel ".") toplabel ["."] with toplabel starting with ALPHA (§25.1)."""
    if text.endswith("."):
        text = text[:-1]
    if not text:
        return False
    labels = text.split(".")
    for label in labels:
        if not label or label[0] == "-" or label[-1] == "-" or not set(label) <= _LABEL_CHARS:
            return False
    return labels[-1][0] in _ALPHA


def _is_host(text: str) -> bool:
    """host = hostname / IPv4address / IPv6reference (RFC 3261 §25.1)."""
    if not text:
        return False
    if text[0] == "[":
        return _is_ipv6_reference(text)
    if set(text) <= _DIGIT | {"."}:
        return _is_ipv4(text)
    return _is_hostname(text)


def _parse_port(text: str) -> int:
    if not text or len(text) > 5 or not set(text) <= _DIGIT:
        raise SipParseError("Malformed port")
    port = int(text)
    if port > 65535:
        raise SipParseError("Port out of range")
    return port


# -- URIs --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SipUri:
    """A parsed sip: or sips: URI (RFC 3261 §19.1.1), components in escaped wire form."""

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None
    params: tuple[tuple[str, str | None], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str | None:
        """Value of the first URI parameter `name` (case-insensitive, §19.1.4).

        None both when the parameter is absent and when it has no value (`;lr`); use
        `has_param` to tell those apart.
        """
        wanted = name.lower()
        for pname, pvalue in self.params:
            if pname.lower() == wanted:
                return pvalue
        return None

    def has_param(self, name: str) -> bool:
        wanted = name.lower()
        return any(pname.lower() == wanted for pname, _ in self.params)

    @property
    def transport(self) -> str | None:
        """The transport parameter, lower-cased (§19.1.1); None when absent."""
        value = self.param("transport")
        return value.lower() if value is not None else None

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        for pname, pvalue in self.params:
            out.append(f";{pname}" if pvalue is None else f";{pname}={pvalue}")
        if self.headers:
            out.append("?" + "&".join(f"{hname}={hvalue}" for hname, hvalue in self.headers))
        return "".join(out)


def uri_host(host: str) -> str:
    """A host as it stands in a SIP URI, Via or URL: IPv6 literals in brackets (RFC 5118 §4)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def implied_transport(uri: SipUri) -> str:
    """The transport a URI asks for: its `transport` parameter, or else what its scheme
    implies (RFC 3263 §4.1: UDP for sip:; RFC 3261 §26.2.2: TLS for sips:)."""
    return uri.transport or ("tls" if uri.scheme.lower() == "sips" else "udp")


def sip_transport(uri: SipUri) -> SipTransport | None:
    """The transport a phone is reached over at `uri`; None for one sipbridge has not (sctp,
    ws...)."""
    transport = implied_transport(uri).lower()
    return transport if transport in ("udp", "tcp", "tls") else None  # type: ignore[return-value]


def next_hop_transport(uri: str) -> str:
    """How a request to `uri` (the outbound proxy's, when there is one) leaves."""
    return implied_transport(parse_uri(uri)).lower()


@functools.lru_cache(maxsize=8192)
def parse_uri(text: str) -> SipUri:
    """Parse a sip:/sips: URI strictly per RFC 3261 §25.1 (IPv6 per RFC 5118).

    Whitespace and control characters are rejected outright (RFC 4475 §3.1.2.8), as are ports
    above 65535, malformed IPv6 references (RFC 5118 §4.2, §4.10) and empty hosts.
    """
    if not isinstance(text, str):
        raise SipParseError("URI is not text")
    if len(text) > MAX_URI_LENGTH:
        raise SipParseError("URI too long")
    if not text.isascii() or _BAD_URI_CHAR.search(text):
        raise SipParseError("Invalid character in URI")
    colon = text.find(":")
    scheme = text[:colon].lower() if colon > 0 else ""
    if scheme not in ("sip", "sips"):
        raise SipParseError("Not a sip or sips URI")
    rest = text[colon + 1 :]

    user: str | None = None
    password: str | None = None
    at_count = rest.count("@")
    if at_count > 1:
        raise SipParseError("Malformed URI userinfo")
    if at_count == 1:
        userinfo, _, rest = rest.partition("@")
        user, sep, pw = userinfo.partition(":")
        if _USER_RE.fullmatch(user) is None:
            raise SipParseError("Malformed URI user part")
        if sep:
            if _PASSWORD_RE.fullmatch(pw) is None:
                raise SipParseError("Malformed URI password")
            password = pw

    if rest.startswith("["):
        close = rest.find("]")
        if close < 0:
            raise SipParseError("Unterminated IPv6 reference")
        host = rest[: close + 1]
        i = close + 1
    else:
        i = 0
        n = len(rest)
        while i < n and rest[i] not in ":;?":
            i += 1
        host = rest[:i]
    if not _is_host(host):
        raise SipParseError("Malformed URI host")

    port: int | None = None
    if rest.startswith(":", i):
        j = i + 1
        n = len(rest)
        while j < n and rest[j] not in ";?":
            j += 1
        port = _parse_port(rest[i + 1 : j])
        i = j

    params: list[tuple[str, str | None]] = []
    if rest.startswith(";", i):
        q = rest.find("?", i)
        section = rest[i + 1 : q if q >= 0 else len(rest)]
        i = q if q >= 0 else len(rest)
        for item in section.split(";"):
            pname, sep, pvalue = item.partition("=")
            if _PARAMCHARS_RE.fullmatch(pname) is None:
                raise SipParseError("Malformed URI parameter")
            if sep and _PARAMCHARS_RE.fullmatch(pvalue) is None:
                raise SipParseError("Malformed URI parameter value")
            params.append((pname, pvalue if sep else None))

    headers: list[tuple[str, str]] = []
    if rest.startswith("?", i):
        for item in rest[i + 1 :].split("&"):
            hname, sep, hvalue = item.partition("=")
            if not sep or _HNAME_RE.fullmatch(hname) is None:
                raise SipParseError("Malformed URI header")
            if _HVALUE_RE.fullmatch(hvalue) is None:
                raise SipParseError("Malformed URI header value")
            headers.append((hname, hvalue))
        i = len(rest)

    if i != len(rest):
        raise SipParseError("Malformed URI")
    return SipUri(
        scheme=scheme,
        user=user,
        password=password,
        host=host,
        port=port,
        params=tuple(params),
        headers=tuple(headers),
    )


def _check_uri(text: str) -> None:
    """Validate any absolute URI: sip/sips strictly, other schemes as RFC 2396 absoluteURI.

    RFC 3261 §8.2.2.1 and RFC 4475 §3.3.2-3.3.4: an unknown scheme is well-formed and is left for
    the application to refuse (416), so only its syntax is checked here.
    """
    colon = text.find(":")
    if colon <= 0 or _SCHEME_RE.fullmatch(text[:colon]) is None:
        raise SipParseError("URI is not absolute")
    if text[:colon].lower() in ("sip", "sips"):
        parse_uri(text)
    elif _OPAQUE_RE.fullmatch(text, colon + 1) is None:
        raise SipParseError("Malformed URI")


# -- header parameters and name-addr -----------------------------------------------------------


def _check_gen_value(value: str) -> None:
    """gen-value = token / host / quoted-string (§25.1), plus a bare IPv6 address (RFC 5118)."""
    if _is_token(value) or _is_ipv6_reference(value) or _is_ipv6_address(value):
        return
    raise SipParseError("Malformed header parameter value")


def _parse_params(text: str, i: int) -> list[tuple[str, str | None]]:
    """Parse `*( SEMI generic-param )` from `text[i:]` to the end (RFC 3261 §7.3.1, §25.1).

    SEMI and EQUAL allow whitespace on both sides (RFC 4475 §3.1.1.1). Names are returned
    lower-cased (parameter names are case-insensitive); values verbatim, quotes included.
    """
    out: list[tuple[str, str | None]] = []
    n = len(text)
    while True:
        i = _skip_ws(text, i)
        if i >= n:
            return out
        if text[i] != ";":
            raise SipParseError("Malformed header parameters")
        i = _skip_ws(text, i + 1)
        j = _token_end(text, i)
        if j == i:
            raise SipParseError("Empty header parameter")
        name = text[i:j].lower()
        i = _skip_ws(text, j)
        value: str | None = None
        if i < n and text[i] == "=":
            i = _skip_ws(text, i + 1)
            if i < n and text[i] == '"':
                j = _quoted_end(text, i)
            else:
                m = _GEN_VALUE_RUN.match(text, i)
                j = m.end() if m else i
                if j == i:
                    raise SipParseError("Empty header parameter value")
                _check_gen_value(text[i:j])
            value = text[i:j]
            i = j
        out.append((name, value))


def _param_dict(params: list[tuple[str, str | None]]) -> dict[str, str | None]:
    """Parameters as a dict; a repeated name (e.g. two tags) is ambiguous, so it is an error."""
    out: dict[str, str | None] = {}
    for name, value in params:
        if name in out:
            raise SipParseError("Duplicate header parameter")
        out[name] = value
    return out


@dataclass(frozen=True, slots=True)
class _NameAddr:
    display: str | None
    uri: str
    bracketed: bool
    params: dict[str, str | None]


def _split_name_addr(text: str) -> _NameAddr:
    """Split `[display-name] <addr-spec> *(;param)` or `addr-spec *(;param)` (RFC 3261 §20.10).

    display-name = *(token LWS) / quoted-string, so an unquoted comma is an error (RFC 4475
    §3.1.2.15). Inside <...> no whitespace is allowed (§3.1.2.14). In the bare form parameters
    belong to the header, and a URI holding ',' '?' or ';' must be enclosed (§20.10, RFC 4475
    §3.1.2.13). The URI is validated: sip/sips strictly, other schemes as absoluteURI.
    """
    n = len(text)
    i = _skip_ws(text, 0)
    display: str | None = None
    if i < n and text[i] == '"':
        j = _quoted_end(text, i)
        display = _unquote(text[i:j])
        i = _skip_ws(text, j)
        if i >= n or text[i] != "<":
            raise SipParseError("Expected <URI> after display name")
    elif i < n and text[i] != "<":
        words: list[str] = []
        pos = i
        while True:
            j = _token_end(text, pos)
            if j == pos:
                break
            words.append(text[pos:j])
            pos = _skip_ws(text, j)
            if pos == j:
                break
        if words and pos < n and text[pos] == "<":
            display = " ".join(words)
            i = pos

    if i < n and text[i] == "<":
        close = text.find(">", i + 1)
        if close < 0:
            raise SipParseError("Missing > after URI")
        uri = text[i + 1 : close]
        _check_uri(uri)
        params = _param_dict(_parse_params(text, close + 1))
        return _NameAddr(display=display, uri=uri, bracketed=True, params=params)

    semi = text.find(";", i)
    end = semi if semi >= 0 else n
    uri = text[i:end].rstrip(" \t")
    if not uri:
        raise SipParseError("Missing URI")
    if any(ch in uri for ch in ',?<>"'):
        raise SipParseError("URI with , ? or ; must be enclosed in <>")
    _check_uri(uri)
    params = _param_dict(_parse_params(text, end))
    return _NameAddr(display=None, uri=uri, bracketed=False, params=params)


def parse_name_addr(text: str) -> tuple[str | None, SipUri, dict[str, str | None]]:
    """Parse a From/To/Contact-style value whose URI is sip: or sips: (RFC 3261 §20.10).

    Returns (display name, URI, header parameters). The display name is unquoted and unescaped,
    None when absent. For the bare `uri;tag=x` form the parameters after the URI are header
    parameters, not URI parameters (§20). Parameter names are lower-cased; values are verbatim.
    """
    if not isinstance(text, str):
        raise SipParseError("Address is not text")
    if len(text) > MAX_URI_LENGTH:
        raise SipParseError("Address too long")
    parts = _split_name_addr(text)
    return parts.display, parse_uri(parts.uri), parts.params
