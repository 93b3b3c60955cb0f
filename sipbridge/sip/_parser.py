"""Sans-I/O SIP message parser and serializer (RFC 3261 §7, §18.3, §20, §25).

No sockets, threads or clocks: bytes in, immutable values out. The parser is strict where RFC
3261 calls a message malformed and tolerant where RFC 4475 §3.1.1 calls it valid but odd (line
folding, odd whitespace, compact and mixed-case names, escapes, unknown methods and schemes).

Work and memory are bounded for any input: the header section is capped at `MAX_HEADER_BYTES`,
one (unfolded) header field at `MAX_FIELD_LENGTH`, the field count at `MAX_HEADERS`, and every
scan is linear (see `uri`).

Text encoding: the start line and headers must be UTF-8 (RFC 3261 §7.3.1, TEXT-UTF8 in §25.1);
anything else is a `SipParseError`, with no Latin-1 fallback. The corpus labels were weighed:
RFC 4475 needs only valid UTF-8 (`intmeth`, `unreason`), and the PROTOS cases that carry Latin-1
or overlong sequences in headers are labelled "must pass" only by php-sip, a parser that checks
no encoding at all; almost all of them put those bytes where RFC 3261 allows only ASCII (token,
word, URI), so they would be rejected on grammar anyway.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from sipbridge.sip.uri import (
    _QUOTED_RE,
    SipParseError,
    _check_uri,
    _is_host,
    _is_ipv4,
    _is_ipv6_address,
    _is_ipv6_reference,
    _is_token,
    _param_dict,
    _parse_params,
    _parse_port,
    _skip_ws,
    _split_name_addr,
    _split_top_level,
    _token_end,
    parse_uri,
)

MAX_HEADERS = 256
"""Most header fields (after unfolding) in one message."""
MAX_FIELD_LENGTH = 16384
"""Longest header field, name and unfolded value together, in characters."""
MAX_HEADER_BYTES = 65536
"""Longest start line plus header section, in bytes, up to the empty line."""

_CRLF = b"\r\n"
_END_OF_HEAD = b"\r\n\r\n"

# RFC 3261 §7.3.3 plus the registry's later compact forms (RFC 3265, 3515, 3892, 4028, 3841,
# 4474).
_COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "u": "Allow-Events",
    "r": "Refer-To",
    "b": "Referred-By",
    "x": "Session-Expires",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "y": "Identity",
}
_KNOWN_NAMES = (
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Accept-Resource-Priority",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Answer-Mode",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-ID",
    "Content-Language",
    "Content-Length",
    "Content-Transfer-Encoding",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Event",
    "Expires",
    "Flow-Timer",
    "From",
    "History-Info",
    "Identity",
    "In-Reply-To",
    "Join",
    "Max-Forwards",
    "MIME-Version",
    "Min-Expires",
    "Min-SE",
    "Organization",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Refer-Sub",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Replaces",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Resource-Priority",
    "Retry-After",
    "Route",
    "RSeq",
    "Security-Client",
    "Security-Server",
    "Security-Verify",
    "Server",
    "Service-Route",
    "Session-Expires",
    "SIP-ETag",
    "SIP-If-Match",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
)
_CANONICAL = {name.lower(): name for name in _KNOWN_NAMES}
_CANONICAL.update(_COMPACT)

# Headers whose grammar is `x *(COMMA x)`: get_all() splits these. Never the credentials headers
# (commas separate auth-params there) nor Date (a comma follows the weekday).
_LIST_HEADERS = frozenset(
    name.lower()
    for name in (
        "Via",
        "Contact",
        "Route",
        "Record-Route",
        "Allow",
        "Supported",
        "Require",
        "Proxy-Require",
        "Unsupported",
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Allow-Events",
        "Content-Encoding",
        "Content-Language",
        "Alert-Info",
        "Call-Info",
        "Error-Info",
        "In-Reply-To",
        "Path",
        "Service-Route",
        "P-Asserted-Identity",
        "P-Preferred-Identity",
        "Warning",
        "Reason",
        "Security-Client",
        "Security-Server",
        "Security-Verify",
        "Accept-Contact",
        "Reject-Contact",
        "Request-Disposition",
        "History-Info",
        "Accept-Resource-Priority",
        "Resource-Priority",
    )
)
# RFC 3261 §20 table and RFC 4475 §3.3.8-3.3.9: more than one of these is ambiguous.
_SINGLE = ("Call-ID", "Content-Length", "CSeq", "From", "To", "Max-Forwards", "Content-Type")
# §8.1.1: mandatory in every request (Max-Forwards is only a SHOULD for RFC 2543 peers,
# RFC 4475 §3.4.1); §8.2.6.2 copies the same set into every response.
_MANDATORY = ("To", "From", "CSeq", "Call-ID", "Via")

_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CTL_OR_QUOTE = re.compile(r'["\x00-\x08\x0a-\x1f\x7f]')
_DIGITS = re.compile(r"[0-9]{1,10}")
_LEADING_DIGITS = re.compile(r"[0-9]*")
_CSEQ_RE = re.compile(r"([0-9]{1,10})[ \t]+([A-Za-z0-9\-.!%*_+`'~]+)")
# word = 1*(alphanum / - . ! % * _ + ` ' ~ ( ) < > : \ DQUOTE / [ ] ? { })
_CALL_ID_RE = re.compile(
    r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+(?:@[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+)?"
)
# SIP-date = rfc1123-date, which is always GMT (RFC 3261 §20.17, RFC 4475 §3.1.2.12).
_DATE_RE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)
_VIA_HOST_RUN = re.compile(r"[A-Za-z0-9.\-]*")


def _canonical(name: str) -> str:
    return _CANONICAL.get(name.lower(), name)


# -- Headers -----------------------------------------------------------------------------------


class Headers:
    """Immutable, ordered multi-map of header fields (RFC 3261 §7.3).

    Names are case-insensitive and compact forms are equivalent (§7.3.1, §7.3.3), so known names
    are stored in their canonical full spelling ("v" and "VIA" become "Via"); unknown names keep
    the spelling given. Values are stored without surrounding whitespace, as on the wire after
    HCOLON. Equality compares names case-insensitively and values exactly, in order.
    """

    __slots__ = ("_index", "_items")
    _items: tuple[tuple[str, str], ...]
    _index: dict[str, tuple[str, ...]]

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        checked: list[tuple[str, str]] = []
        for name, value in items:
            if not isinstance(name, str) or not _is_token(name):
                raise ValueError(f"invalid header name {name!r}")
            if not isinstance(value, str) or "\r" in value or "\n" in value:
                raise ValueError(f"invalid value for header {name}")
            checked.append((_canonical(name), value.strip(" \t")))
        self._init(tuple(checked))

    @classmethod
    def _trusted(cls, items: tuple[tuple[str, str], ...]) -> Headers:
        """Build from items the parser has already validated and canonicalised."""
        obj = cls.__new__(cls)
        obj._init(items)
        return obj

    def _init(self, items: tuple[tuple[str, str], ...]) -> None:
        index: dict[str, list[str]] = {}
        for name, value in items:
            index.setdefault(name.lower(), []).append(value)
        object.__setattr__(self, "_items", items)
        object.__setattr__(self, "_index", {k: tuple(v) for k, v in index.items()})

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Headers is immutable")

    def __reduce__(self) -> tuple[type[Headers], tuple[tuple[tuple[str, str], ...]]]:
        return (Headers, (self._items,))

    def get(self, name: str) -> str | None:
        """First value of `name` (for list headers the first element, e.g. the top Via)."""
        values = self.get_all(name)
        return values[0] if values else None

    def get_all(self, name: str) -> tuple[str, ...]:
        """All values of `name` in wire order.

        For headers whose grammar is a comma list (Via, Contact, Route, Allow, Supported, ...)
        comma-joined values are split (RFC 3261 §7.3.1), respecting quotes and <...>; empty
        elements are dropped. Other headers (Date, WWW-Authenticate, Authorization, ...) are
        returned as written.
        """
        key = _canonical(name).lower()
        values = self._index.get(key, ())
        if key not in _LIST_HEADERS:
            return values
        out: list[str] = []
        for value in values:
            out.extend(part for part in _split_top_level(value, strict=False) if part)
        return tuple(out)

    def items(self) -> tuple[tuple[str, str], ...]:
        """Every (name, value) field in wire order, unsplit."""
        return self._items

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and _canonical(name).lower() in self._index

    def __len__(self) -> int:
        return len(self._items)

    def with_header(self, name: str, value: str) -> Headers:
        """A copy with one more field appended after the others."""
        return Headers((*self._items, (name, value)))

    def replaced(self, name: str, value: str) -> Headers:
        """A copy where every `name` field is replaced by one field, at the first one's place."""
        key = _canonical(name).lower()
        out: list[tuple[str, str]] = []
        placed = False
        for item in self._items:
            if item[0].lower() == key:
                if not placed:
                    out.append((name, value))
                    placed = True
            else:
                out.append(item)
        if not placed:
            out.append((name, value))
        return Headers(out)

    def without(self, name: str) -> Headers:
        """A copy with every `name` field removed."""
        key = _canonical(name).lower()
        return Headers._trusted(tuple(item for item in self._items if item[0].lower() != key))

    def _key(self) -> tuple[tuple[str, str], ...]:
        return tuple((name.lower(), value) for name, value in self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"


# -- messages ----------------------------------------------------------------------------------


def _check_common(headers: Headers, body: bytes, version: str) -> None:
    if not isinstance(headers, Headers):
        raise TypeError("headers must be a Headers")
    if not isinstance(body, bytes):
        raise TypeError("body must be bytes")
    if not version or _CTL.search(version) or " " in version or "\t" in version:
        raise ValueError("invalid SIP version")


@dataclass(frozen=True, kw_only=True)
class SipRequest:
    """A SIP request (RFC 3261 §7.1). Construction rejects values that would break the framing."""

    method: str
    uri: str
    headers: Headers
    body: bytes = b""
    version: str = "SIP/2.0"

    def __post_init__(self) -> None:
        if not _is_token(self.method):
            raise ValueError("method must be a token")
        if not self.uri or _CTL.search(self.uri) or " " in self.uri or "\t" in self.uri:
            raise ValueError("Request-URI must not be empty or contain whitespace")
        _check_common(self.headers, self.body, self.version)


@dataclass(frozen=True, kw_only=True)
class SipResponse:
    """A SIP response (RFC 3261 §7.2). Construction rejects values that would break the framing."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""
    version: str = "SIP/2.0"

    def __post_init__(self) -> None:
        if not isinstance(self.status, int) or not 100 <= self.status <= 699:
            raise ValueError("status must be within 100-699")
        if _CTL.search(self.reason):
            raise ValueError("reason must not contain control characters")
        _check_common(self.headers, self.body, self.version)


SipMessage: TypeAlias = SipRequest | SipResponse


# -- header value checks -----------------------------------------------------------------------


def _check_text(value: str) -> None:
    """No CTL except HT in a header value, unless escaped as a quoted-pair (§25.1).

    RFC 4475 §3.1.1.2 has NUL, BEL and DEL inside a quoted display name; any other control
    character (a bare CR or LF, NUL, ESC, ...) makes the message malformed.
    """
    if _CTL.search(value) is None:
        return
    pos = 0
    while True:
        m = _CTL_OR_QUOTE.search(value, pos)
        if m is None:
            return
        if m.group() != '"':
            raise SipParseError("Control character in header value")
        q = _QUOTED_RE.match(value, m.start())
        if q is None:
            # An unbalanced quote in an opaque header is just text; no quoted-pairs follow.
            if _CTL.search(value, m.end()):
                raise SipParseError("Control character in header value")
            return
        pos = q.end()


def _int_value(value: str, limit: int, what: str) -> int:
    if _DIGITS.fullmatch(value) is None:
        raise SipParseError(f"Malformed {what}")
    number = int(value)
    if number > limit:
        raise SipParseError(f"{what} out of range")
    return number


def _parse_cseq(value: str) -> tuple[int, str]:
    """CSeq = 1*DIGIT LWS Method, the number below 2**31 (§8.1.1.5, RFC 4475 §3.1.2.4)."""
    m = _CSEQ_RE.fullmatch(value)
    if m is None:
        raise SipParseError("Malformed CSeq")
    number = int(m.group(1))
    if number >= 2**31:
        raise SipParseError("CSeq number out of range")
    return number, m.group(2)


def _check_via(element: str) -> None:
    """via-parm = sent-protocol LWS sent-by *(SEMI via-params) (RFC 3261 §20.42, §25.1).

    SLASH and COLON allow whitespace around them (RFC 4475 §3.1.1.1); the protocol must be
    SIP/2.0 (RFC 4475 §3.1.2.16); the host must be a valid host and the port at most 65535.
    """
    n = len(element)
    i = _skip_ws(element, 0)
    fields: list[str] = []
    for k in range(3):
        j = _token_end(element, i)
        if j == i:
            raise SipParseError("Malformed Via sent-protocol")
        fields.append(element[i:j])
        i = _skip_ws(element, j)
        if k < 2:
            if i >= n or element[i] != "/":
                raise SipParseError("Malformed Via sent-protocol")
            i = _skip_ws(element, i + 1)
    if fields[0].upper() != "SIP" or fields[1] != "2.0":
        raise SipParseError("Unsupported SIP version in Via")
    if i == j:
        raise SipParseError("Malformed Via sent-by")
    if i < n and element[i] == "[":
        close = element.find("]", i)
        if close < 0:
            raise SipParseError("Malformed Via host")
        j = close + 1
    else:
        m = _VIA_HOST_RUN.match(element, i)
        j = m.end() if m else i
    if not _is_host(element[i:j]):
        raise SipParseError("Malformed Via host")
    i = _skip_ws(element, j)
    if i < n and element[i] == ":":
        i = _skip_ws(element, i + 1)
        m = _DIGITS.match(element, i)
        j = m.end() if m else i
        if j < n and element[j] in "0123456789":
            raise SipParseError("Port out of range")
        _parse_port(element[i:j])
        i = j
    params = _param_dict(_parse_params(element, i))
    for name in ("branch", "received", "maddr", "ttl"):
        if name in params and params[name] is None:
            raise SipParseError(f"Via {name} needs a value")
    branch = params.get("branch")
    if branch is not None and not _is_token(branch):
        raise SipParseError("Malformed Via branch")
    received = params.get("received")
    if received is not None and not (
        _is_ipv4(received) or _is_ipv6_address(received) or _is_ipv6_reference(received)
    ):
        raise SipParseError("Malformed Via received")
    ttl = params.get("ttl")
    if ttl is not None:
        _int_value(ttl, 255, "Via ttl")
    maddr = params.get("maddr")
    if maddr is not None and not _is_host(maddr):
        raise SipParseError("Malformed Via maddr")
    rport = params.get("rport")
    if rport is not None:
        _parse_port(rport)


def _check_list(value: str, what: str) -> list[str]:
    parts = _split_top_level(value)
    if any(not part for part in parts):
        raise SipParseError(f"Empty element in {what}")
    return parts


def _check_field(name: str, value: str) -> None:
    """Grammar checks for the headers the transaction and dialog layers rely on."""
    if name == "Via":
        for element in _check_list(value, "Via"):
            _check_via(element)
    elif name in ("From", "To"):
        _split_name_addr(value)
    elif name == "Contact":
        if value != "*":
            for element in _check_list(value, "Contact"):
                _split_name_addr(element)
    elif name in ("Route", "Record-Route"):
        for element in _check_list(value, name):
            if not _split_name_addr(element).bracketed:
                raise SipParseError(f"{name} URI must be enclosed in <>")
    elif name == "Call-ID":
        if _CALL_ID_RE.fullmatch(value) is None:
            raise SipParseError("Malformed Call-ID")
    elif name == "CSeq":
        _parse_cseq(value)
    elif name == "Max-Forwards":
        _int_value(value, 255, "Max-Forwards")
    elif name == "Expires":
        _int_value(value, 2**32 - 1, "Expires")
    elif name == "Retry-After":
        # delta-seconds [comment] *(SEMI retry-param) (§20.33, RFC 4475 §3.1.2.5)
        m = _LEADING_DIGITS.match(value)
        _int_value(m.group() if m else "", 2**32 - 1, "Retry-After")
    elif name == "Date" and _DATE_RE.fullmatch(value) is None:
        raise SipParseError("Malformed Date")


# -- parsing -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Head:
    """A validated start line and header section, waiting for its body."""

    kind: Literal["request", "response"]
    method: str
    uri: str
    status: int
    reason: str
    fields: tuple[tuple[str, str], ...]
    content_length: int | None


def _parse_start_line(line: str) -> tuple[Literal["request", "response"], str, str, int, str]:
    if line[:4].upper() == "SIP/":
        # Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (§7.2, §25.1)
        if line[:8].upper() != "SIP/2.0 ":
            raise SipParseError("Unsupported SIP version")
        code = line[8:11]
        if len(code) != 3 or not code.isdigit() or not code.isascii() or code[0] not in "123456":
            raise SipParseError("Malformed status code")
        if len(line) > 11 and line[11] != " ":
            raise SipParseError("Malformed status code")
        reason = line[12:]
        if _CTL.search(reason):
            raise SipParseError("Control character in reason phrase")
        return "response", "", "", int(code), reason
    # Request-Line = Method SP Request-URI SP SIP-Version (§7.1): exactly single spaces
    # (RFC 4475 §3.1.2.9, §3.1.2.10), no whitespace in the URI (§3.1.2.8).
    parts = line.split(" ")
    if len(parts) != 3:
        raise SipParseError("Malformed Request-Line")
    method, uri, version = parts
    if not _is_token(method):
        raise SipParseError("Malformed method")
    if version.upper() != "SIP/2.0":
        raise SipParseError("Unsupported SIP version")
    if _CTL.search(uri) or "\t" in uri:
        raise SipParseError("Malformed Request-URI")
    if uri.partition(":")[0].lower() in ("sip", "sips"):
        if parse_uri(uri).headers:
            # §19.1.1 Table 1: no headers in a Request-URI (RFC 4475 §3.1.2.11).
            raise SipParseError("Headers not allowed in Request-URI")
    else:
        _check_uri(uri)  # any absolute URI; no <> around it (RFC 4475 §3.1.2.7)
    return "request", method, uri, 0, ""


def _parse_head(raw: bytes) -> _Head:
    """Parse and validate everything before the empty line (without the final CRLFCRLF)."""
    if len(raw) > MAX_HEADER_BYTES:
        raise SipParseError("Header section too large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("Header section is not valid UTF-8") from None
    lines = text.split("\r\n")
    if not lines[0]:
        raise SipParseError("Missing start line")
    kind, method, uri, status, reason = _parse_start_line(lines[0])

    # Unfold (§7.3.1): a line starting with SP/HT continues the previous field, and the fold
    # (CRLF plus whitespace) is equivalent to a single SP.
    raw_fields: list[list[str]] = []
    size = 0
    for line in lines[1:]:
        size += len(line)
        if line[:1] in (" ", "\t"):
            if not raw_fields:
                raise SipParseError("Continuation line without a header")
            if size > MAX_FIELD_LENGTH:
                raise SipParseError("Header field too long")
            raw_fields[-1].append(line.strip(" \t"))
            continue
        if len(raw_fields) >= MAX_HEADERS:
            raise SipParseError("Too many header fields")
        size = len(line)
        if size > MAX_FIELD_LENGTH:
            raise SipParseError("Header field too long")
        raw_fields.append([line])

    fields: list[tuple[str, str]] = []
    for parts in raw_fields:
        first = parts[0]
        colon = first.find(":")
        if colon < 0:
            raise SipParseError("Header line without a colon")
        name = first[:colon].rstrip(" \t")
        if not _is_token(name):
            raise SipParseError("Malformed header name")
        pieces = [first[colon + 1 :].strip(" \t"), *parts[1:]]
        value = " ".join(piece for piece in pieces if piece)
        _check_text(value)
        fields.append((_canonical(name), value))

    seen: dict[str, int] = {}
    for name, _ in fields:
        seen[name] = seen.get(name, 0) + 1
    for name in _SINGLE:
        if seen.get(name, 0) > 1:
            raise SipParseError(f"More than one {name} header")
    for name in _MANDATORY:
        if name not in seen:
            raise SipParseError(f"Missing {name} header")

    content_length: int | None = None
    for name, value in fields:
        _check_field(name, value)
        if name == "Content-Length":
            # 1*DIGIT (§20.14): no sign, no garbage (RFC 4475 §3.1.2.3); 10 digits is plenty.
            content_length = _int_value(value, 2**32 - 1, "Content-Length")
        elif name == "CSeq" and kind == "request" and _parse_cseq(value)[1] != method:
            # §8.1.1.5: the CSeq method MUST match the request method (RFC 4475 §3.1.2.17-18).
            raise SipParseError("CSeq method does not match request method")
    return _Head(
        kind=kind,
        method=method,
        uri=uri,
        status=status,
        reason=reason,
        fields=tuple(fields),
        content_length=content_length,
    )


def _finish(head: _Head, body: bytes) -> SipMessage:
    """Attach the body; Content-Length is normalised to the body actually kept.

    Every parsed message therefore has exactly one correct Content-Length (appended when a
    datagram omitted it, §18.3), which makes serialize() and parse_message() exact inverses.
    """
    length = str(len(body))
    fields = head.fields
    for index, (name, _) in enumerate(fields):
        if name == "Content-Length":
            fields = (*fields[:index], (name, length), *fields[index + 1 :])
            break
    else:
        fields = (*fields, ("Content-Length", length))
    headers = Headers._trusted(fields)
    if head.kind == "request":
        return SipRequest(method=head.method, uri=head.uri, headers=headers, body=body)
    return SipResponse(status=head.status, reason=head.reason, headers=headers, body=body)


def _skip_crlfs(data: bytes | bytearray, start: int = 0) -> int:
    while data.startswith(_CRLF, start):
        start += 2
    return start


def parse_message(data: bytes) -> SipMessage:
    """Parse one complete datagram (RFC 3261 §18.3 for UDP).

    A Content-Length larger than the datagram is an error; extra octets after the body are
    discarded (§18.3, RFC 4475 §3.1.1.8, §3.1.2.2); without Content-Length the body runs to the
    end of the datagram. CRLFs before the start line are skipped (§7.5).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError("parse_message() needs bytes")
    data = bytes(data)
    start = _skip_crlfs(data)
    if start >= len(data):
        raise SipParseError("Empty message")
    end = data.find(_END_OF_HEAD, start, start + MAX_HEADER_BYTES + len(_END_OF_HEAD))
    if end < 0:
        if len(data) - start > MAX_HEADER_BYTES:
            raise SipParseError("Header section too large")
        raise SipParseError("Missing empty line after headers")
    head = _parse_head(data[start:end])
    body = data[end + len(_END_OF_HEAD) :]
    if head.content_length is not None:
        if head.content_length > len(body):
            raise SipParseError("Content-Length larger than message body")
        body = body[: head.content_length]
    return _finish(head, body)


class StreamParser:
    """Frame SIP messages on a stream transport by Content-Length (RFC 3261 §18.3), h11-style.

    feed() bytes as they arrive and call next_message() until it returns None. CRLFs between
    messages are keep-alives (RFC 5626 §3.5.1) and are skipped. Content-Length is mandatory on
    streams. After a SipParseError the framing is lost for good: every later call raises the
    same error, and the connection should be closed.
    """

    def __init__(self, *, max_buffer: int = 65536) -> None:
        if max_buffer < 1:
            raise ValueError("max_buffer must be positive")
        self._max = max_buffer
        self._buf = bytearray()
        self._scan_from = 0
        self._head: _Head | None = None
        self._head_len = 0
        self._total = 0
        self._error: SipParseError | None = None

    def feed(self, data: bytes) -> None:
        """Buffer more bytes; raises SipParseError when the pending message cannot fit."""
        if self._error is not None:
            raise self._error
        self._buf += data
        if len(self._buf) > self._max:
            self._frame()

    def next_message(self) -> SipMessage | None:
        """The next complete message, or None when more data is needed."""
        if self._error is not None:
            raise self._error
        total = self._frame()
        if total is None:
            return None
        head = self._head
        assert head is not None
        body = bytes(self._buf[self._head_len : total])
        del self._buf[:total]
        self._head = None
        self._scan_from = 0
        return _finish(head, body)

    def _fail(self, error: SipParseError) -> SipParseError:
        self._error = error
        return error

    def _frame(self) -> int | None:
        """Total length of the first buffered message when it is complete, else None."""
        if self._head is None:
            skip = _skip_crlfs(self._buf)
            if skip:
                del self._buf[:skip]
                self._scan_from = 0
            end = self._buf.find(_END_OF_HEAD, self._scan_from)
            if end < 0:
                self._scan_from = max(0, len(self._buf) - len(_END_OF_HEAD) + 1)
                if len(self._buf) > self._max:
                    raise self._fail(SipParseError("Header section exceeds buffer limit"))
                return None
            head_len = end + len(_END_OF_HEAD)
            if head_len > self._max:
                raise self._fail(SipParseError("Header section exceeds buffer limit"))
            try:
                head = _parse_head(bytes(self._buf[:end]))
            except SipParseError as exc:
                raise self._fail(exc) from None
            if head.content_length is None:
                raise self._fail(SipParseError("Missing Content-Length on stream transport"))
            if head_len + head.content_length > self._max:
                raise self._fail(SipParseError("Message exceeds buffer limit"))
            self._head = head
            self._head_len = head_len
            self._total = head_len + head.content_length
        return self._total if len(self._buf) >= self._total else None


# -- serializing and helpers -------------------------------------------------------------------


def serialize(message: SipMessage) -> bytes:
    """Render a message for the wire (RFC 3261 §7), always with a correct Content-Length.

    Content-Length is written where the message had it (else last) and set to len(body), so a
    stale or missing value can never desynchronise a stream peer (§18.3, §20.14).
    """
    if isinstance(message, SipRequest):
        lines = [f"{message.method} {message.uri} {message.version}"]
    else:
        lines = [f"{message.version} {message.status:03d} {message.reason}"]
    length = f"Content-Length: {len(message.body)}"
    written = False
    for name, value in message.headers.items():
        if name == "Content-Length":
            if not written:
                lines.append(length)
                written = True
            continue
        lines.append(f"{name}: {value}")
    if not written:
        lines.append(length)
    lines.append("")
    lines.append("")
    return "\r\n".join(lines).encode("utf-8") + message.body


def header_params(value: str) -> tuple[str, dict[str, str | None]]:
    """Split `a;b=c;d` into ('a', {'b': 'c', 'd': None}) (RFC 3261 §7.3.1).

    The split happens at the first ';' outside quoted strings and <...>, so a name-addr's URI
    parameters stay in the first part. Names are lower-cased, values verbatim (quoted strings
    keep their quotes). Malformed or repeated parameters raise SipParseError.
    """
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if ch == '"':
            m = _QUOTED_RE.match(value, i)
            if m is None:
                raise SipParseError("Unterminated or malformed quoted string")
            i = m.end()
        elif ch == "<":
            close = value.find(">", i + 1)
            if close < 0:
                raise SipParseError("Unbalanced < in header value")
            i = close + 1
        elif ch == ";":
            break
        else:
            i += 1
    return value[:i].strip(" \t"), _param_dict(_parse_params(value, i))


def cseq(message: SipMessage) -> tuple[int, str]:
    """The CSeq number and method (§20.16); SipParseError when missing or malformed."""
    value = message.headers.get("CSeq")
    if value is None:
        raise SipParseError("Missing CSeq header")
    return _parse_cseq(value)


def top_via_branch(message: SipMessage) -> str | None:
    """The branch parameter of the topmost Via (§8.1.1.7), None when there is none."""
    top = message.headers.get("Via")
    if top is None:
        return None
    return header_params(top)[1].get("branch")


def build_response(
    request: SipRequest,
    status: int,
    reason: str,
    *,
    to_tag: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> SipResponse:
    """Build a response to `request` per RFC 3261 §8.2.6.

    Copies every Via (in order), From, Call-ID and CSeq, and To with `;tag=to_tag` added when
    the To has no tag yet - except on 100 Trying, which never gets a tag (§8.2.6.2). `headers`
    are appended, then Content-Type (when given) and a Content-Length matching `body`. A To
    that cannot be parsed (only possible for a hand-built request) raises SipParseError.
    """
    if to_tag is not None and not _is_token(to_tag):
        raise ValueError("to_tag must be a token")
    out: list[tuple[str, str]] = []
    for name, value in request.headers.items():
        if name == "Via":
            out.append((name, value))
    for name in ("From", "To", "Call-ID", "CSeq"):
        copied = request.headers.get(name)
        if copied is None:
            continue
        tag_wanted = name == "To" and to_tag is not None and status != 100
        if tag_wanted and "tag" not in header_params(copied)[1]:
            copied = f"{copied};tag={to_tag}"
        out.append((name, copied))
    out.extend(headers)
    if content_type is not None:
        out.append(("Content-Type", content_type))
    out.append(("Content-Length", str(len(body))))
    return SipResponse(status=status, reason=reason, headers=Headers(out), body=body)
