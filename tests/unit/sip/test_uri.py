"""SIP/SIPS URI and name-addr parsing (RFC 3261 §19.1, §20.10, §25.1; RFC 5118)."""

from __future__ import annotations

import contextlib
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipbridge.sip.uri import SipParseError, SipUri, parse_name_addr, parse_uri

# -- parse_uri: valid ----------------------------------------------------------------------------


def test_minimal_uri() -> None:
    uri = parse_uri("sip:example.com")
    assert uri == SipUri(scheme="sip", user=None, password=None, host="example.com", port=None)
    assert str(uri) == "sip:example.com"


def test_full_uri() -> None:
    text = "sips:alice:secret@host.example.com:5061;transport=TCP;lr;maddr=10.0.0.1?subject=hi&x="
    uri = parse_uri(text)
    assert uri.scheme == "sips"
    assert uri.user == "alice"
    assert uri.password == "secret"
    assert uri.host == "host.example.com"
    assert uri.port == 5061
    assert uri.params == (("transport", "TCP"), ("lr", None), ("maddr", "10.0.0.1"))
    assert uri.headers == (("subject", "hi"), ("x", ""))
    assert uri.transport == "tcp"
    assert uri.param("MADDR") == "10.0.0.1"
    assert uri.param("lr") is None
    assert uri.has_param("LR")
    assert not uri.has_param("ttl")
    assert str(uri) == text


def test_scheme_is_case_insensitive() -> None:
    assert parse_uri("SIP:bob@example.com").scheme == "sip"


def test_empty_password_is_kept() -> None:
    uri = parse_uri("sip:bob:@example.com")
    assert uri.password == ""
    assert str(uri) == "sip:bob:@example.com"


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:[2001:db8::10]", "[2001:db8::10]", None),
        ("sip:[2001:db8::10]:5070", "[2001:db8::10]", 5070),
        ("sip:user@[::ffff:192.0.2.2]", "[::ffff:192.0.2.2]", None),
        # RFC 5118 §4.3: the "ambiguous" form is still a valid 8-group address.
        ("sip:[2001:db8::10:5070]", "[2001:db8::10:5070]", None),
        ("sip:192.0.2.1:0", "192.0.2.1", 0),
        ("sip:host.example.com.:65535", "host.example.com.", 65535),
        ("sip:a-b.c1", "a-b.c1", None),
    ],
)
def test_hosts(text: str, host: str, port: int | None) -> None:
    uri = parse_uri(text)
    assert (uri.host, uri.port) == (host, port)
    assert str(uri) == text


def test_rfc4475_unusual_user_and_password() -> None:
    # RFC 4475 §3.1.1.2: every user-unreserved and mark character, a '?' and ';' in the user.
    text = (
        "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
        "(doesn't-it)@example.com"
    )
    uri = parse_uri(text)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert str(uri) == text


def test_escapes_are_kept_in_wire_form() -> None:
    uri = parse_uri("sip:null-%00-null@example.com;%6C%72;n%61me=v%61lue%25%34%31")
    assert uri.user == "null-%00-null"
    assert uri.params == (("%6C%72", None), ("n%61me", "v%61lue%25%34%31"))


def test_semicolon_in_user_part() -> None:
    # RFC 4475 §3.1.1.9
    uri = parse_uri("sip:user;par=u%40example.net@example.com")
    assert uri.user == "user;par=u%40example.net"
    assert uri.params == ()


# -- parse_uri: invalid ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip:",
        "sip:@example.com",
        "example.com",
        "tel:+15551234",
        "http://example.com",
        "sip: user@example.com",
        "sip:user@example.com ",
        "sip:user@exam ple.com",
        "sip:user@example.com\r\nVia: x",
        "sip:user@example.com\x00",
        "sip:us\ter@example.com",
        "sip:usér@example.com",
        "sip:user@example.com:65536",
        "sip:user@example.com:-1",
        "sip:user@example.com:",
        "sip:user@example.com:5060x",
        "sip:user@example.com:123456",
        "sip:2001:db8::10",  # RFC 5118 §4.2
        "sip:user@[2001:db8:::192.0.2.1]",  # RFC 5118 §4.10
        "sip:user@[2001:db8::1",
        "sip:user@[]",
        "sip:user@[fe80::1%25eth0]",
        "sip:user@[192.0.2.1]",
        "sip:a@b@example.com",
        "sip:user@-example.com",
        "sip:user@example-.com",
        "sip:user@example..com",
        "sip:user@example.123",
        "sip:user@256.1.1.1",
        "sip:user@1.2.3",
        "sip:user@exa_mple.com",
        "sip:user@example.com;",
        "sip:user@example.com;;lr",
        "sip:user@example.com;maddr=",
        "sip:user@example.com;a=b=c",
        "sip:user@example.com?",
        "sip:user@example.com?novalue",
        "sip:user@example.com?a=b&",
        "sip:us%2@example.com",
        "sip:us%zz@example.com",
        "sip:user@example.com;p=%4",
        "<sip:user@example.com>",
        "sip:user@example.com>",
        'sip:us"er@example.com',
    ],
)
def test_invalid_uris(text: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_uri(text)
    assert info.value.reason
    assert info.value.reason.isascii() and info.value.reason.isprintable()


def test_reason_never_echoes_input() -> None:
    with pytest.raises(SipParseError) as info:
        parse_uri("sip:user@example.com\r\nX-Evil: 1")
    assert "\r" not in info.value.reason and "Evil" not in info.value.reason
    assert str(info.value) == info.value.reason


def test_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_uri("nope")


def test_overlong_uri_is_rejected() -> None:
    with pytest.raises(SipParseError):
        parse_uri("sip:" + "a" * 20000 + "@example.com")


# -- parse_name_addr -------------------------------------------------------------------------------


def test_name_addr_with_quoted_display() -> None:
    display, uri, params = parse_name_addr('"Bob \\"B\\" Smith" <sip:bob@example.com>;tag=a48s')
    assert display == 'Bob "B" Smith'
    assert uri.user == "bob"
    assert params == {"tag": "a48s"}


def test_name_addr_with_token_display_and_no_space() -> None:
    # RFC 4475 §3.1.1.6
    display, uri, params = parse_name_addr("caller<sip:caller@example.com>;tag=323")
    assert display == "caller"
    assert uri.host == "example.com"
    assert params == {"tag": "323"}


def test_name_addr_token_words_are_joined() -> None:
    display, _, _ = parse_name_addr("A.  Bell <sip:a.g.bell@example.com>")
    assert display == "A. Bell"


def test_bare_addr_spec_params_belong_to_header() -> None:
    # RFC 3261 §20: in `uri;tag=x` the parameter is a header parameter.
    display, uri, params = parse_name_addr("sip:user@example.com;tag=1918181833n")
    assert display is None
    assert uri.params == ()
    assert params == {"tag": "1918181833n"}


def test_uri_params_inside_brackets_stay_with_uri() -> None:
    _, uri, params = parse_name_addr("<sip:user@example.com;lr;transport=udp>;expires=60;q=0.5")
    assert uri.params == (("lr", None), ("transport", "udp"))
    assert params == {"expires": "60", "q": "0.5"}


def test_whitespace_around_params_is_allowed() -> None:
    # RFC 4475 §3.1.1.1 (after unfolding)
    display, _, params = parse_name_addr(
        '"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam = newvalue ; secondparam'
        " ; q = 0.33"
    )
    assert display == 'Quoted string ""'
    assert params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}


def test_quoted_param_values_are_verbatim() -> None:
    _, _, params = parse_name_addr('<sip:a@example.com>;+sip.instance="<urn:uuid:1>";Tag=x')
    assert params == {"+sip.instance": '"<urn:uuid:1>"', "tag": "x"}


def test_headers_allowed_in_bracketed_uri() -> None:
    # RFC 4475 §3.3.14
    _, uri, _ = parse_name_addr("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>")
    assert uri.headers == (("Route", "%3Csip:sip.example.com%3E"),)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",  # RFC 4475 §3.1.2.15
        '"Mr. J. User <sip:j.user@example.com>',  # RFC 4475 §3.1.2.6
        '"Watson, Thomas" < sip:t.watson@example.org >',  # RFC 4475 §3.1.2.14
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",  # RFC 4475 §3.1.2.13
        "sip:a@example.com, sip:b@example.com",
        "<sip:user@example.com",
        "sip:user@example.com>",
        "<<sip:user@example.com>",
        "<sip:user@example.com>>",
        "<sip:user@example.com>;",
        "<sip:user@example.com>;;tag=1",
        "<sip:user@example.com>;tag=",
        "<sip:user@example.com>;tag=a;tag=b",
        "<sip:user@example.com>;tag=a b",
        "<sip:user@example.com>=token",
        "<sip:user@example.com>;tag====x",
        "<sip:user@example.com> junk",
        '"unterminated <sip:user@example.com>',
        '"Bob" sip:bob@example.com',
        "<tel:+1555>",  # parse_name_addr is for sip/sips URIs
        "<>",
    ],
)
def test_invalid_name_addrs(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_name_addr(text)


# -- properties --------------------------------------------------------------------------------

_UNRESERVED = string.ascii_letters + string.digits + "-_.!~*'()"
_ESCAPE = st.sampled_from(["%00", "%20", "%41", "%3a", "%3A", "%ff"])


def _escaped_text(extra: str, *, min_size: int) -> st.SearchStrategy[str]:
    piece = st.one_of(st.sampled_from(_UNRESERVED + extra), _ESCAPE)
    return st.lists(piece, min_size=min_size, max_size=8).map("".join)


_LABEL = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=6)
_TOPLABEL = st.text(string.ascii_lowercase, min_size=1, max_size=6)
_HOSTNAME = st.builds(
    lambda labels, top: ".".join([*labels, top]), st.lists(_LABEL, max_size=3), _TOPLABEL
)
_HOST = st.one_of(
    _HOSTNAME,
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)

sip_uris = st.builds(
    SipUri,
    scheme=st.sampled_from(["sip", "sips"]),
    user=st.none() | _escaped_text("&=+$,;?/", min_size=1),
    password=st.none() | _escaped_text("&=+$,", min_size=0),
    host=_HOST,
    port=st.none() | st.integers(0, 65535),
    params=st.lists(
        st.tuples(
            _escaped_text("[]/:&+$", min_size=1),
            st.none() | _escaped_text("[]/:&+$", min_size=1),
        ),
        max_size=4,
    ).map(tuple),
    headers=st.lists(
        st.tuples(_escaped_text("[]/?:+$", min_size=1), _escaped_text("[]/?:+$", min_size=0)),
        max_size=3,
    ).map(tuple),
).filter(lambda u: u.user is not None or u.password is None)


@given(sip_uris)
@settings(max_examples=300, deadline=None)
def test_str_and_parse_are_inverse(uri: SipUri) -> None:
    assert parse_uri(str(uri)) == uri


@given(st.text(max_size=80))
@settings(max_examples=500, deadline=None)
def test_parse_uri_only_raises_sip_parse_error(text: str) -> None:
    with contextlib.suppress(SipParseError):
        parse_uri(text)


@given(
    st.text(alphabet=st.sampled_from(list("sip:@[]<>;?=&%\"' ,.:0123456789abAB\\\t")), max_size=60)
)
@settings(max_examples=500, deadline=None)
def test_name_addr_only_raises_sip_parse_error(text: str) -> None:
    with contextlib.suppress(SipParseError):
        parse_name_addr(text)


@pytest.mark.parametrize(
    ("host", "expected"),
    [("10.0.0.5", "10.0.0.5"), ("pbx.example.com", "pbx.example.com"), ("::1", "[::1]"), ("[::1]", "[::1]")],
)
def test_uri_host_brackets_ipv6_literals_once(host, expected):
    from sipbridge.sip.uri import uri_host

    assert uri_host(host) == expected
