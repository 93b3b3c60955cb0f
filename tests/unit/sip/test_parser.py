"""Sans-I/O SIP message parsing, framing and serializing (RFC 3261 §7, §18.3, §20)."""

from __future__ import annotations

import contextlib
import copy
import pickle
import string
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipbridge.sip import message as public
from sipbridge.sip.message import (
    Headers,
    SipMessage,
    SipParseError,
    SipRequest,
    SipResponse,
    StreamParser,
    build_response,
    cseq,
    header_params,
    parse_message,
    serialize,
    top_via_branch,
)

_DEFAULT_HEADERS = [
    ("Via", "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds"),
    ("Max-Forwards", "70"),
    ("To", "Bob <sip:bob@biloxi.example.com>"),
    ("From", "Alice <sip:alice@atlanta.example.com>;tag=1928301774"),
    ("Call-ID", "a84b4c76e66710@pc33.atlanta.example.com"),
    ("CSeq", "314159 INVITE"),
    ("Contact", "<sip:alice@pc33.atlanta.example.com>"),
]


def raw(
    start: str = "INVITE sip:bob@biloxi.example.com SIP/2.0",
    *,
    body: bytes = b"",
    length: str | None = "auto",
    drop: tuple[str, ...] = (),
    extra: dict[str, str] | None = None,
    **changes: str,
) -> bytes:
    """A request on the wire; `Call_ID="x"` replaces a default header, `drop` removes some."""
    changes = {**changes, **(extra or {})}
    changed = {
        name.replace("_", "-").lower(): (name.replace("_", "-"), value)
        for name, value in changes.items()
    }
    lines = [start]
    for name, value in _DEFAULT_HEADERS:
        if name in drop:
            continue
        lines.append(f"{name}: {changed.pop(name.lower(), (name, value))[1]}")
    lines.extend(f"{name}: {value}" for name, value in changed.values())
    if length == "auto":
        lines.append(f"Content-Length: {len(body)}")
    elif length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def invalid(data: bytes) -> str:
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    return info.value.reason


# -- public surface ------------------------------------------------------------------------------


def test_public_names() -> None:
    names = (
        "SipParseError Headers SipRequest SipResponse SipMessage parse_message StreamParser "
        "serialize build_response header_params cseq top_via_branch"
    )
    for name in names.split(" "):
        assert name in public.__all__
        assert hasattr(public, name)
    assert SipMessage == SipRequest | SipResponse
    assert issubclass(SipParseError, ValueError)


# -- Headers -------------------------------------------------------------------------------------


def test_headers_case_insensitive_and_compact() -> None:
    headers = Headers([("v", "SIP/2.0/UDP a.example.com"), ("CALL-id", "x@y"), ("X-Odd", "1")])
    assert headers.items() == (
        ("Via", "SIP/2.0/UDP a.example.com"),
        ("Call-ID", "x@y"),
        ("X-Odd", "1"),
    )
    assert headers.get("via") == headers.get("V") == "SIP/2.0/UDP a.example.com"
    assert headers.get("i") == "x@y"
    assert headers.get("x-odd") == "1"
    assert "VIA" in headers and "v" in headers and "Route" not in headers
    assert headers.get("Route") is None
    assert headers.get_all("Route") == ()
    assert len(headers) == 3


@pytest.mark.parametrize(
    ("compact", "full"),
    [
        ("i", "Call-ID"),
        ("m", "Contact"),
        ("e", "Content-Encoding"),
        ("l", "Content-Length"),
        ("c", "Content-Type"),
        ("f", "From"),
        ("s", "Subject"),
        ("k", "Supported"),
        ("t", "To"),
        ("v", "Via"),
        ("o", "Event"),
        ("u", "Allow-Events"),
        ("r", "Refer-To"),
        ("b", "Referred-By"),
        ("x", "Session-Expires"),
    ],
)
def test_compact_forms(compact: str, full: str) -> None:
    headers = Headers([(compact.upper(), "value")])
    assert headers.items() == ((full, "value"),)
    assert headers.get(compact) == headers.get(full.lower()) == "value"


def test_get_all_splits_only_comma_lists() -> None:
    headers = Headers(
        [
            ("Via", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/TCP b;branch=z9hG4bK2"),
            ("v", "SIP/2.0/UDP c;branch=z9hG4bK3"),
            ("Contact", '"Doe, John" <sip:j@a.example.com;p=x,y>, <sip:k@b.example.com>'),
            ("Allow", "INVITE, ACK,BYE,, "),
            ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
            ("WWW-Authenticate", 'Digest realm="a, b", nonce="n"'),
            ("Authorization", 'Digest username="u", realm="r"'),
            ("Warning", '399 host "a, b", 370 other "c"'),
            ("Subject", "a, b"),
        ]
    )
    assert headers.get_all("Via") == (
        "SIP/2.0/UDP a;branch=z9hG4bK1",
        "SIP/2.0/TCP b;branch=z9hG4bK2",
        "SIP/2.0/UDP c;branch=z9hG4bK3",
    )
    assert headers.get("Via") == "SIP/2.0/UDP a;branch=z9hG4bK1"
    assert headers.get_all("m") == (
        '"Doe, John" <sip:j@a.example.com;p=x,y>',
        "<sip:k@b.example.com>",
    )
    assert headers.get_all("Allow") == ("INVITE", "ACK", "BYE")
    assert headers.get_all("Date") == ("Sat, 13 Nov 2010 23:29:00 GMT",)
    assert headers.get_all("WWW-Authenticate") == ('Digest realm="a, b", nonce="n"',)
    assert headers.get_all("Authorization") == ('Digest username="u", realm="r"',)
    assert headers.get_all("Warning") == ('399 host "a, b"', '370 other "c"')
    assert headers.get_all("Subject") == ("a, b",)


def test_contact_star_is_not_split() -> None:
    assert Headers([("Contact", "*")]).get_all("Contact") == ("*",)


def test_unbalanced_quote_in_list_header_is_returned_whole() -> None:
    assert Headers([("Accept", 'a/b, "c')]).get_all("Accept") == ('a/b, "c',)


def test_headers_are_immutable_values() -> None:
    headers = Headers([("To", "<sip:a@b.example.com>")])
    with pytest.raises(AttributeError):
        headers._items = ()
    added = headers.with_header("Subject", "hi")
    assert headers.items() == (("To", "<sip:a@b.example.com>"),)
    assert added.items() == (("To", "<sip:a@b.example.com>"), ("Subject", "hi"))
    assert copy.deepcopy(added) == added
    assert pickle.loads(pickle.dumps(added)) == added


def test_replaced_and_without() -> None:
    headers = Headers([("Via", "1"), ("To", "t"), ("v", "2"), ("From", "f")])
    assert headers.replaced("VIA", "3").items() == (("Via", "3"), ("To", "t"), ("From", "f"))
    assert headers.replaced("Route", "<sip:r>").items()[-1] == ("Route", "<sip:r>")
    assert headers.without("v").items() == (("To", "t"), ("From", "f"))


def test_headers_equality_and_hash() -> None:
    a = Headers([("X-Thing", "1"), ("v", "x")])
    b = Headers([("x-thing", "1"), ("VIA", "x")])
    assert a == b and hash(a) == hash(b)
    assert a != Headers([("v", "x"), ("X-Thing", "1")])
    assert a != Headers([("X-Thing", "2"), ("v", "x")])
    assert Headers([("X-Pad", " padded\t")]).items() == (("X-Pad", "padded"),)


@pytest.mark.parametrize(
    ("name", "value"),
    [("Bad Name", "v"), ("", "v"), ("X:", "v"), ("X", "a\r\nInjected: 1"), ("X", "a\nb")],
)
def test_headers_reject_injection(name: str, value: str) -> None:
    with pytest.raises(ValueError):
        Headers([(name, value)])


# -- parse_message: requests ---------------------------------------------------------------------


def test_parse_simple_request() -> None:
    msg = parse_message(raw(body=b"v=0\r\n", Content_Type="application/sdp"))
    assert isinstance(msg, SipRequest)
    assert msg.method == "INVITE"
    assert msg.uri == "sip:bob@biloxi.example.com"
    assert msg.version == "SIP/2.0"
    assert msg.body == b"v=0\r\n"
    assert msg.headers.get("Content-Type") == "application/sdp"
    assert msg.headers.get("Content-Length") == "5"
    assert cseq(msg) == (314159, "INVITE")
    assert top_via_branch(msg) == "z9hG4bK776asdhds"


def test_folding_whitespace_and_case() -> None:
    data = (
        b"OPTIONS sip:user@example.com SIP/2.0\r\n"
        b"TO :\r\n sip:user@example.com ;   tag    = 1918181833n\r\n"
        b'from   : "J Rosenberg \\\\\\""  <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8\r\n'
        b"MaX-fOrWaRdS: 0068\r\n"
        b"Call-ID: wsinv.ndaksdj@192.0.2.1\r\n"
        b"cseq: 0009\r\n  OPTIONS\r\n"
        b"Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw\r\n"
        b"s :\r\n"
        b"NewFangledHeader:   newfangled value\r\n continued newfangled value\r\n"
        b"\r\n"
    )
    msg = parse_message(data)
    assert msg.headers.get("To") == "sip:user@example.com ;   tag    = 1918181833n"
    assert (
        msg.headers.get("From")
        == '"J Rosenberg \\\\\\""  <sip:jdrosen@example.com> ; tag = 98asjd8'
    )
    assert msg.headers.get("Max-Forwards") == "0068"
    assert msg.headers.get("CSeq") == "0009 OPTIONS"
    assert msg.headers.get("Subject") == ""
    assert msg.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert cseq(msg) == (9, "OPTIONS")
    assert top_via_branch(msg) == "390skdjuw"
    assert header_params(msg.headers.get("To") or "")[1] == {"tag": "1918181833n"}


def test_unknown_method_and_schemes_are_accepted() -> None:
    msg = parse_message(
        raw("NEWMETHOD nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0", CSeq="1 NEWMETHOD")
    )
    assert isinstance(msg, SipRequest) and msg.method == "NEWMETHOD"
    msg = parse_message(raw(To="isbn:2983792873", Contact="<name:John_Smith>"))
    assert msg.headers.get("To") == "isbn:2983792873"


def test_leading_crlf_is_skipped() -> None:
    assert isinstance(parse_message(b"\r\n\r\n" + raw()), SipRequest)


def test_datagram_body_rules() -> None:
    # §18.3: octets beyond Content-Length are discarded; without it the body runs to the end.
    msg = parse_message(raw(body=b"hello", length="3"))
    assert msg.body == b"hel"
    assert msg.headers.get("Content-Length") == "3"
    msg = parse_message(raw(body=b"hello", length=None))
    assert msg.body == b"hello"
    assert msg.headers.items()[-1] == ("Content-Length", "5")
    msg = parse_message(raw(body=b"hello", length="005"))
    assert msg.headers.get("Content-Length") == "5"


@pytest.mark.parametrize(
    "length", ["6", "-1", "+5", "five", "1 2", "99999999999", "4294967296", ""]
)
def test_bad_content_length(length: str) -> None:
    invalid(raw(body=b"hello", length=length))


def test_compact_content_length_counts_as_duplicate() -> None:
    invalid(raw(body=b"ab", l="2"))


@pytest.mark.parametrize("name", ["Call-ID", "CSeq", "From", "To", "Max-Forwards", "Content-Type"])
def test_single_valued_headers_must_not_repeat(name: str) -> None:
    value = dict(_DEFAULT_HEADERS).get(name, "text/plain")
    data = raw(extra={name.replace("-", "_"): value})
    data = data.replace(b"\r\n\r\n", f"\r\n{name}: {value}\r\n\r\n".encode(), 1)
    assert "More than one" in invalid(data)


@pytest.mark.parametrize("name", ["To", "From", "CSeq", "Call-ID", "Via"])
def test_mandatory_headers(name: str) -> None:
    assert invalid(raw(drop=(name,))) == f"Missing {name} header"


def test_max_forwards_is_optional() -> None:
    # RFC 4475 §3.4.1: RFC 2543 peers may omit it.
    assert parse_message(raw(drop=("Max-Forwards",))).headers.get("Max-Forwards") is None


@pytest.mark.parametrize(
    "start",
    [
        "INVITE sip:bob@biloxi.example.com SIP/7.0",
        "INVITE sip:bob@biloxi.example.com SIP/2.0 ",
        "INVITE  sip:bob@biloxi.example.com SIP/2.0",
        "INVITE sip:bob@biloxi.example.com  SIP/2.0",
        "INVITE sip:bob@biloxi.example.com; lr SIP/2.0",
        "INVITE <sip:bob@biloxi.example.com> SIP/2.0",
        "INVITE bob@biloxi.example.com SIP/2.0",
        "INVITE /path SIP/2.0",
        "INVITE sip:bob@biloxi.example.com?Route=%3Csip:example.com%3E SIP/2.0",
        "INVITE sip:bob@biloxi.example.com:99999 SIP/2.0",
        "INVITE sip:2001:db8::10 SIP/2.0",
        "INV ITE sip:bob@biloxi.example.com SIP/2.0",
        "INVITE\tsip:bob@biloxi.example.com SIP/2.0",
        "INVITE sip:bob@biloxi.example.com",
        " INVITE sip:bob@biloxi.example.com SIP/2.0",
        "",
    ],
)
def test_bad_request_lines(start: str) -> None:
    invalid(raw(start))


def test_cseq_method_must_match() -> None:
    assert "does not match" in invalid(raw(CSeq="314159 OPTIONS"))
    assert "does not match" in invalid(raw(CSeq="314159 invite"))


@pytest.mark.parametrize(
    "value", ["", "INVITE", "1", "-1 INVITE", "2147483648 INVITE", "1 INVITE x", "1 INV@TE"]
)
def test_bad_cseq(value: str) -> None:
    invalid(raw(CSeq=value))


def test_cseq_limits() -> None:
    assert cseq(parse_message(raw(CSeq="2147483647 INVITE"))) == (2**31 - 1, "INVITE")
    assert cseq(parse_message(raw(CSeq="0 INVITE"))) == (0, "INVITE")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Max-Forwards", "256"),
        ("Max-Forwards", "-1"),
        ("Max-Forwards", "seventy"),
        ("Expires", "4294967296"),
        ("Expires", "-1"),
        ("Retry-After", "949302838503028349304023988"),
        ("Retry-After", "soon"),
        ("Date", "Fri, 01 Jan 2010 16:00:00 EST"),
        ("Date", "Friday, 01 Jan 2010 16:00:00 GMT"),
        ("Call-ID", "has space@example.com"),
        ("Call-ID", "a@b@c"),
        ("Call-ID", "a, b"),
        ("Call-ID", "caf\u00e9"),
        ("Via", "SIP/2.0/UDP 192.0.2.15;;,;,,"),
        ("Via", "SIP/2.0/UDP host.example.com:-31;branch=z9hG4bK1"),
        ("Via", "SIP/2.0/UDP host.example.com:65536;branch=z9hG4bK1"),
        ("Via", "SIP/2.0/UDP host.example.com:::5060"),
        ("Via", "SIP/7.0/UDP host.example.com;branch=z9hG4bK1"),
        ("Via", "/2.0/UDP host.example.com"),
        ("Via", "SIP/2.0/UDPhost.example.com"),
        ("Via", "SIP/2.0/UDP 10.10.10.256"),
        ("Via", "SIP/2.0/UDP host.example.com;=token"),
        ("Via", "SIP/2.0/UDP host.example.com;branch=a;branch=b"),
        ("Via", 'SIP/2.0/UDP host.example.com;branch="quoted"'),
        ("Via", "SIP/2.0/UDP host.example.com;received=host.example.com"),
        ("Via", "SIP/2.0/UDP host.example.com;ttl=256"),
        ("Via", "SIP/2.0/UDP host.example.com;rport=x"),
        ("Via", "SIP/2.0/UDP host.example.com;ttl"),
        ("Via", "SIP/2.0/UDP host.example.com;branch"),
        ("Contact", '"Joe" <sip:joe@example.org>;;;;'),
        ("Contact", "<sip:a@example.com>,"),
        ("Contact", "sip:user@example.com?Route=%3Csip:sip.example.com%3E"),
        ("Contact", "1211 sip:sender@example.com>"),
        ("Contact", "1227 <sip:sender@example.com"),
        ("Route", "sip:proxy.example.com;lr"),
        ("Record-Route", "<sip:p1.example.com;lr>, sip:p2.example.com"),
        ("To", '"Watson, Thomas" < sip:t.watson@example.org >'),
        ("From", "Bell, Alexander <sip:a.g.bell@example.com>;tag=43"),
        ("From", "Alice <sip:alice@atlanta.example.com>;tag=a;tag=b"),
        ("From", "Alice <sip:alice@atlanta.example.com>=token"),
        ("To", '"Mr. J. User <sip:j.user@example.com>'),
        ("X-Ctl", "bell\x07"),
        ("X-Nul", "a\x00b"),
        ("X-Cr", "a\rb"),
    ],
)
def test_bad_header_values(name: str, value: str) -> None:
    reason = invalid(raw(extra={name.replace("-", "_"): value}))
    assert reason.isascii() and reason.isprintable()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Via", "SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3"),
        ("Via", "SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3"),
        ("Via", "sip / 2.0 / SCTP host.example.com : 5060 ; rport ; branch = z9hG4bK.x"),
        ("Via", "SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en;ttl=1;maddr=239.1.1.1"),
        ("Via", "SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~"),
        ("Contact", "*"),
        ("Contact", "sip:+19725552222@gw1.example.net;unknownparam"),
        ("Contact", '"a" <sip:a@example.com>;q=0.5, <sips:b@[2001:db8::1]:5061>;expires=60'),
        ("Call-ID", "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"),
        ("Date", "Sat, 15 Oct 2005 04:44:56 GMT"),
        ("Expires", "4294967295"),
        ("Retry-After", "120 (I'm in a meeting);duration=3600"),
        ("From", "token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;tag=_token~1'+`*%!-."),
        ("From", '"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:a@example.com>;tag=1'),
        ("To", "<sip:%75se%72@example.com>"),
        ("X-Utf8", "\u00e9t\u00e9 \u2603"),
        ("X-Quote", 'unbalanced " quote'),
        ("X-Empty", ""),
    ],
)
def test_tolerated_header_values(name: str, value: str) -> None:
    msg = parse_message(raw(extra={name.replace("-", "_"): value}))
    assert msg.headers.get_all(name)
    assert parse_message(serialize(msg)) == msg


def test_quoted_pair_nul_is_the_only_nul_allowed() -> None:
    assert isinstance(parse_message(raw(To='"\\\x00" <sip:a@example.com>')), SipRequest)
    invalid(raw(To='"\x00" <sip:a@example.com>'))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\n\r\n",
        b"INVITE sip:a@example.com SIP/2.0\r\n",
        b"INVITE sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP a\r\n",
        b"\x00\x01\x02\r\n\r\n",
        b"\xff\xfe\r\n\r\n",
    ],
)
def test_garbage(data: bytes) -> None:
    invalid(data)


def test_header_section_must_be_utf8() -> None:
    assert "UTF-8" in invalid(raw(X_Latin1="x").replace(b"X-Latin1: x", b"X-Latin1: \xe5\xe4\xf6"))


def test_body_may_be_any_bytes() -> None:
    body = bytes(range(256))
    assert parse_message(raw(body=body)).body == body


def test_bare_lf_is_not_a_line_end() -> None:
    invalid(raw().replace(b"SIP/2.0\r\nVia", b"SIP/2.0\nVia"))
    invalid(raw().replace(b"\r\n\r\n", b"\n\n"))


def test_header_line_without_colon() -> None:
    invalid(raw().replace(b"Max-Forwards: 70", b"Max-Forwards 70"))
    invalid(raw().replace(b"Max-Forwards: 70", b": 70"))


def test_continuation_of_start_line_is_rejected() -> None:
    invalid(raw().replace(b"SIP/2.0\r\n", b"SIP/2.0\r\n continued\r\n", 1))


def test_limits() -> None:
    many = raw(extra={f"X-H{i}": "v" for i in range(248)})
    assert len(parse_message(many).headers) == 256
    invalid(raw(extra={f"X-H{i}": "v" for i in range(260)}))
    invalid(raw(X_Long="a" * 17000))
    invalid(raw(X_Folded="a" + "\r\n a" * 9000))
    invalid(raw(extra={f"X-H{i}": "a" * 15000 for i in range(5)}))


# -- parse_message: responses --------------------------------------------------------------------

_RESPONSE_HEADERS = (
    "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\r\n"
    "Call-ID: noreason.asndj203insdf99223ndf\r\n"
    "CSeq: 35 INVITE\r\n"
    "From: <sip:user@example.com>;tag=39ansfi3\r\n"
    "To: <sip:user@example.edu>;tag=902jndnke3\r\n"
    "Content-Length: 0\r\n\r\n"
)


@pytest.mark.parametrize(
    ("line", "status", "reason"),
    [
        ("SIP/2.0 200 OK", 200, "OK"),
        ("SIP/2.0 100 ", 100, ""),
        ("SIP/2.0 180", 180, ""),
        ("sip/2.0 486 Busy Here", 486, "Busy Here"),
        ("SIP/2.0 699 \u00e9t\u00e9\tx ", 699, "\u00e9t\u00e9\tx "),
        ("SIP/2.0 200 = 2**3 * 5**2", 200, "= 2**3 * 5**2"),
    ],
)
def test_status_lines(line: str, status: int, reason: str) -> None:
    msg = parse_message((line + "\r\n" + _RESPONSE_HEADERS).encode())
    assert isinstance(msg, SipResponse)
    assert (msg.status, msg.reason, msg.version) == (status, reason, "SIP/2.0")
    assert parse_message(serialize(msg)) == msg


@pytest.mark.parametrize(
    "line",
    [
        "SIP/2.0 4294967301 better not break the receiver",
        "SIP/2.0 1000 Too Big",
        "SIP/2.0 99 Too Small",
        "SIP/2.0 099 Too Small",
        "SIP/2.0 700 Out of range",
        "SIP/2.0  200 OK",
        "SIP/2.0 2OO OK",
        "SIP/3.0 200 OK",
        "SIP/2.0 200 O\x07K",
        "SIP/2.0200 OK",
    ],
)
def test_bad_status_lines(line: str) -> None:
    invalid((line + "\r\n" + _RESPONSE_HEADERS).encode())


def test_response_needs_mandatory_headers() -> None:
    data = ("SIP/2.0 200 OK\r\n" + _RESPONSE_HEADERS.replace("CSeq: 35 INVITE\r\n", "")).encode()
    assert invalid(data) == "Missing CSeq header"


def test_response_cseq_method_is_free() -> None:
    msg = parse_message(("SIP/2.0 200 OK\r\n" + _RESPONSE_HEADERS).encode())
    assert cseq(msg) == (35, "INVITE")


# -- serialize -----------------------------------------------------------------------------------


def test_serialize_fixes_content_length() -> None:
    request = SipRequest(
        method="MESSAGE",
        uri="sip:bob@example.com",
        headers=Headers([("Content-Length", "999"), ("l", "1"), ("To", "<sip:bob@example.com>")]),
        body=b"hello",
    )
    assert serialize(request) == (
        b"MESSAGE sip:bob@example.com SIP/2.0\r\n"
        b"Content-Length: 5\r\n"
        b"To: <sip:bob@example.com>\r\n\r\nhello"
    )
    response = SipResponse(status=200, reason="OK", headers=Headers())
    assert serialize(response) == b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"


def test_serialize_round_trip_of_parsed_message() -> None:
    data = raw(body=b"v=0\r\n", Content_Type="application/sdp")
    assert serialize(parse_message(data)) == data


@pytest.mark.parametrize(
    ("method", "uri"),
    [
        ("IN VITE", "sip:a@b"),
        ("", "sip:a@b"),
        ("INVITE", "sip:a@b\r\nX: y"),
        ("INVITE", "sip:a@b c"),
        ("INVITE", ""),
    ],
)
def test_request_construction_rejects_framing_breakers(method: str, uri: str) -> None:
    with pytest.raises(ValueError):
        SipRequest(method=method, uri=uri, headers=Headers())


def test_response_construction_rejects_framing_breakers() -> None:
    with pytest.raises(ValueError):
        SipResponse(status=200, reason="OK\r\nX: y", headers=Headers())
    with pytest.raises(ValueError):
        SipResponse(status=1000, reason="OK", headers=Headers())


# -- helpers -------------------------------------------------------------------------------------


def test_header_params() -> None:
    assert header_params("a;b=c;d") == ("a", {"b": "c", "d": None})
    assert header_params('<sip:x@y;lr>;tag=1;q="a;b"') == (
        "<sip:x@y;lr>",
        {"tag": "1", "q": '"a;b"'},
    )
    assert header_params('"x;y" <sip:a@b>') == ('"x;y" <sip:a@b>', {})
    assert header_params("SIP/2.0/UDP h ; BRANCH = z9hG4bK1 ; rport") == (
        "SIP/2.0/UDP h",
        {"branch": "z9hG4bK1", "rport": None},
    )
    assert header_params("application/sdp") == ("application/sdp", {})
    for bad in ("a;;b", "a;=c", "a;b=", 'a;b="x', "<sip:a", "a;b=c;b=d", "a;b c"):
        with pytest.raises(SipParseError):
            header_params(bad)


def test_cseq_and_branch_helpers_on_built_messages() -> None:
    request = SipRequest(method="BYE", uri="sip:a@b.example.com", headers=Headers())
    with pytest.raises(SipParseError):
        cseq(request)
    assert top_via_branch(request) is None
    request = SipRequest(
        method="BYE",
        uri="sip:a@b.example.com",
        headers=Headers([("CSeq", "x BYE"), ("Via", "SIP/2.0/UDP h")]),
    )
    with pytest.raises(SipParseError):
        cseq(request)
    assert top_via_branch(request) is None


# -- build_response ------------------------------------------------------------------------------

_INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP p1.test;branch=z9hG4bK1, SIP/2.0/UDP p2.test;branch=z9hG4bK2\r\n"
    b"Record-Route: <sip:p1.example.com;lr>\r\n"
    b"v: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK3;received=192.0.2.1\r\n"
    b"Max-Forwards: 68\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _invite() -> SipRequest:
    msg = parse_message(_INVITE)
    assert isinstance(msg, SipRequest)
    return msg


def test_build_response_copies_dialog_headers() -> None:
    response = build_response(_invite(), 180, "Ringing", to_tag="a6c85cf")
    assert (response.status, response.reason, response.body) == (180, "Ringing", b"")
    assert response.headers.items() == (
        (
            "Via",
            "SIP/2.0/UDP p1.test;branch=z9hG4bK1, SIP/2.0/UDP p2.test;branch=z9hG4bK2",
        ),
        ("Via", "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK3;received=192.0.2.1"),
        ("From", "Alice <sip:alice@atlanta.example.com>;tag=1928301774"),
        ("To", "Bob <sip:bob@biloxi.example.com>;tag=a6c85cf"),
        ("Call-ID", "a84b4c76e66710@pc33.atlanta.example.com"),
        ("CSeq", "314159 INVITE"),
        ("Content-Length", "0"),
    )
    assert top_via_branch(response) == "z9hG4bK1"
    assert parse_message(serialize(response)) == response


def test_build_response_100_never_gets_a_tag() -> None:
    response = build_response(_invite(), 100, "Trying", to_tag="a6c85cf")
    assert response.headers.get("To") == "Bob <sip:bob@biloxi.example.com>"


def test_build_response_keeps_existing_tag() -> None:
    request = parse_message(
        _INVITE.replace(
            b"To: Bob <sip:bob@biloxi.example.com>", b"t: sip:bob@biloxi.example.com;tag=old"
        )
    )
    assert isinstance(request, SipRequest)
    response = build_response(request, 200, "OK", to_tag="new")
    assert response.headers.get("To") == "sip:bob@biloxi.example.com;tag=old"


def test_build_response_tag_on_bare_to_is_a_header_param() -> None:
    request = parse_message(
        _INVITE.replace(b"To: Bob <sip:bob@biloxi.example.com>", b"To: sip:bob@biloxi.example.com")
    )
    assert isinstance(request, SipRequest)
    response = build_response(request, 486, "Busy Here", to_tag="x1")
    assert response.headers.get("To") == "sip:bob@biloxi.example.com;tag=x1"
    assert header_params(response.headers.get("To") or "")[1] == {"tag": "x1"}


def test_build_response_with_body_and_headers() -> None:
    response = build_response(
        _invite(),
        200,
        "OK",
        to_tag="t",
        headers=[("Contact", "<sip:bob@192.0.2.4>"), ("Supported", "timer")],
        body=b"v=0\r\n",
        content_type="application/sdp",
    )
    assert response.headers.items()[-4:] == (
        ("Contact", "<sip:bob@192.0.2.4>"),
        ("Supported", "timer"),
        ("Content-Type", "application/sdp"),
        ("Content-Length", "5"),
    )
    assert parse_message(serialize(response)) == response


def test_build_response_rejects_bad_tag() -> None:
    with pytest.raises(ValueError):
        build_response(_invite(), 200, "OK", to_tag="a b")


# -- StreamParser --------------------------------------------------------------------------------


def test_stream_parser_frames_by_content_length() -> None:
    first = raw(body=b"abc")
    second = raw("OPTIONS sip:bob@biloxi.example.com SIP/2.0", CSeq="2 OPTIONS")
    parser = StreamParser()
    parser.feed(b"\r\n\r\n" + first + b"\r\n" + second[:10])
    one = parser.next_message()
    assert one == parse_message(first)
    assert parser.next_message() is None
    parser.feed(second[10:] + b"\r\n\r\n")
    two = parser.next_message()
    assert isinstance(two, SipRequest) and two.method == "OPTIONS"
    assert parser.next_message() is None


def test_stream_parser_byte_by_byte() -> None:
    data = raw(body=b"xyz") + b"\r\n\r\n" + raw(body=b"")
    parser = StreamParser()
    got: list[SipMessage] = []
    for i in range(len(data)):
        parser.feed(data[i : i + 1])
        while (msg := parser.next_message()) is not None:
            got.append(msg)
    assert got == [parse_message(raw(body=b"xyz")), parse_message(raw(body=b""))]


def test_stream_parser_requires_content_length() -> None:
    parser = StreamParser()
    parser.feed(raw(length=None))
    with pytest.raises(SipParseError, match="Content-Length"):
        parser.next_message()


def test_stream_parser_header_cap() -> None:
    parser = StreamParser(max_buffer=1000)
    parser.feed(b"INVITE sip:a@example.com SIP/2.0\r\nX: " + b"a" * 900)
    with pytest.raises(SipParseError, match="buffer"):
        parser.feed(b"a" * 200)
    # The framing is lost for good.
    with pytest.raises(SipParseError):
        parser.next_message()
    with pytest.raises(SipParseError):
        parser.feed(b"\r\n\r\n")


def test_stream_parser_body_cap() -> None:
    parser = StreamParser(max_buffer=2000)
    parser.feed(raw(body=b"", length="5000"))
    with pytest.raises(SipParseError, match="buffer"):
        parser.next_message()


def test_stream_parser_large_feed_of_small_messages_is_fine() -> None:
    one = raw()
    parser = StreamParser(max_buffer=len(one) + 10)
    parser.feed(one * 5)
    assert [parser.next_message() for _ in range(6)] == [parse_message(one)] * 5 + [None]


def test_stream_parser_bad_message_poisons() -> None:
    parser = StreamParser()
    parser.feed(b"garbage\r\n\r\n" + raw())
    with pytest.raises(SipParseError):
        parser.next_message()
    with pytest.raises(SipParseError):
        parser.next_message()


def test_stream_parser_rejects_bad_limit() -> None:
    with pytest.raises(ValueError):
        StreamParser(max_buffer=0)


# -- bounded work on hostile input -----------------------------------------------------------------

_HOSTILE = [
    raw(X_Quotes='"\\"' * 5000),
    raw(X_Quotes='"a' * 8000),
    raw(Contact="<sip:a@example.com>," * 800 + "<sip:a@example.com>"),
    raw(Contact='"' + "\\," * 8000),
    raw(Via="SIP/2.0/UDP h" + ";" * 16000),
    raw(Via="SIP/2.0/UDP h;a=" + "=" * 16000),
    raw(From="a " * 8000 + "<sip:a@example.com>"),
    raw(To="<" * 16000),
    raw(Call_ID="@" * 16000),
    raw("INVITE sip:" + "a" * 15000 + "@example.com SIP/2.0"),
    raw("INVITE sip:a@[" + ":" * 15000 + "] SIP/2.0"),
    raw("INVITE sip:a@example.com" + ";a" * 7000 + " SIP/2.0"),
    b"\r\n" * 30000,
    b"INVITE sip:a@example.com SIP/2.0\r\n" + b"X: a\r\n" * 9000 + b"\r\n",
    b"INVITE sip:a@example.com SIP/2.0\r\n" + b" a\r\n" * 9000 + b"\r\n",
    b"X" * 200000,
]


@pytest.mark.parametrize("data", _HOSTILE, ids=range(len(_HOSTILE)))
def test_hostile_input_is_cheap(data: bytes) -> None:
    started = time.perf_counter()
    with contextlib.suppress(SipParseError):
        parse_message(data)
    assert time.perf_counter() - started < 0.5


# -- properties ------------------------------------------------------------------------------------

_TOKEN_CHARS = string.ascii_letters + string.digits + "-.!%*_+`'~"
_WORD_CHARS = _TOKEN_CHARS + '()<>:\\"/[]?{}'
tokens = st.text(_TOKEN_CHARS, min_size=1, max_size=12)
methods = (
    st.sampled_from(["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "NOTIFY"]) | tokens
)
hosts = st.one_of(
    st.from_regex(r"[a-z][a-z0-9]{0,8}(\.[a-z][a-z0-9]{0,8}){0,2}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)
users = st.text(string.ascii_letters + string.digits + "-_.+", min_size=1, max_size=10)
sip_uris = st.builds(
    lambda scheme, user, host, port: f"{scheme}:{user}@{host}{port}",
    st.sampled_from(["sip", "sips"]),
    users,
    hosts,
    st.sampled_from(["", ":5060", ":1", ":65535"]),
)
display_names = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x2FF, blacklist_characters='"\\\x7f'),
    max_size=12,
)
addresses = st.builds(
    lambda display, uri, tag: f'"{display}" <{uri}>' + (f";tag={tag}" if tag else ""),
    display_names,
    sip_uris,
    st.none() | tokens,
)
vias = st.builds(
    lambda transport, host, port, branch: (
        f"SIP/2.0/{transport} {host}{port};branch=z9hG4bK{branch}"
    ),
    st.sampled_from(["UDP", "TCP", "TLS", "WS"]),
    hosts,
    st.sampled_from(["", ":5060", ":5061"]),
    tokens,
)
text_values = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\u2028\u2029"),
    max_size=30,
).map(lambda s: s.strip(" \t"))
extension_headers = st.lists(st.tuples(tokens.map(lambda t: "X-" + t), text_values), max_size=5)
bodies = st.binary(max_size=300)


@st.composite
def requests(draw: st.DrawFn) -> SipRequest:
    method = draw(methods)
    pairs = [
        ("Via", draw(vias)),
        ("From", draw(addresses)),
        ("To", draw(addresses)),
        ("Call-ID", draw(st.text(_WORD_CHARS, min_size=1, max_size=20))),
        ("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}"),
        ("Max-Forwards", str(draw(st.integers(0, 255)))),
        *draw(extension_headers),
    ]
    pairs = draw(st.permutations(pairs))
    body = draw(bodies)
    headers = Headers([*pairs, ("Content-Length", str(len(body)))])
    return SipRequest(method=method, uri=draw(sip_uris), headers=headers, body=body)


@st.composite
def responses(draw: st.DrawFn) -> SipResponse:
    pairs = [
        *[("Via", v) for v in draw(st.lists(vias, min_size=1, max_size=3))],
        ("From", draw(addresses)),
        ("To", draw(addresses)),
        ("Call-ID", draw(st.text(_WORD_CHARS, min_size=1, max_size=20))),
        ("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {draw(methods)}"),
        *draw(extension_headers),
    ]
    body = draw(bodies)
    headers = Headers([*pairs, ("Content-Length", str(len(body)))])
    reason = draw(text_values)
    return SipResponse(
        status=draw(st.integers(100, 699)), reason=reason, headers=headers, body=body
    )


messages = st.one_of(requests(), responses())


@given(messages)
@settings(max_examples=300, deadline=None)
def test_round_trip(msg: SipMessage) -> None:
    assert parse_message(serialize(msg)) == msg


@given(st.binary(max_size=600))
@settings(max_examples=500, deadline=None)
def test_random_bytes_only_raise_sip_parse_error(data: bytes) -> None:
    with contextlib.suppress(SipParseError):
        parse_message(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(serialize(draw(messages)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.sampled_from(b'\x00\r\n \t:;,<>"\\@=%[]/\xff' + b"aZ9"))
        elif op == "insert":
            data[pos:pos] = draw(
                st.sampled_from([b"\r\n", b" ", b";", b",", b'"', b"\r\n ", b"\x00"])
            )
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 4))]
        else:
            del data[pos:]
    return bytes(data)


@given(mutated())
@settings(max_examples=500, deadline=None)
def test_mutated_messages_parse_or_raise_and_round_trip(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipParseError:
        return
    assert parse_message(serialize(msg)) == msg


@given(st.lists(messages, min_size=1, max_size=4), st.data())
@settings(max_examples=150, deadline=None)
def test_stream_chunking_does_not_matter(msgs: list[SipMessage], data: st.DataObject) -> None:
    wire = b""
    for msg in msgs:
        wire += data.draw(st.sampled_from([b"", b"\r\n", b"\r\n\r\n"])) + serialize(msg)

    def run(chunks: list[bytes]) -> list[SipMessage]:
        parser = StreamParser()
        out: list[SipMessage] = []
        for chunk in chunks:
            parser.feed(chunk)
            while (msg := parser.next_message()) is not None:
                out.append(msg)
        return out

    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    pieces = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    whole = run([wire])
    assert whole == msgs
    assert run(pieces) == msgs
    assert run([wire[i : i + 1] for i in range(len(wire))]) == msgs


@given(messages, st.integers(100, 3000))
@settings(max_examples=150, deadline=None)
def test_stream_cap_is_enforced(msg: SipMessage, limit: int) -> None:
    wire = serialize(msg)
    parser = StreamParser(max_buffer=limit)
    if len(wire) <= limit:
        parser.feed(wire)
        assert parser.next_message() == msg
        return
    with pytest.raises(SipParseError):
        parser.feed(wire)
        parser.next_message()
