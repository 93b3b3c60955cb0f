"""The listener's UAS rules, sans sockets: bytes in, bytes out, tracker changes."""

import pytest

from sipbridge.sip.access import Allowlist, RateLimiter, parse_networks
from sipbridge.sip.listener import ListenerCore, Source
from sipbridge.sip.message import SipResponse, parse_message
from sipbridge.tracker import TrackerStore
from sipbridge.tracker.sip_feed import SipFeed

PHONE = Source(host="127.0.0.1", port=5060, transport="udp")
STRANGER = Source(host="192.0.2.99", port=5060, transport="udp")


@pytest.fixture
def store(tmp_path):
    store = TrackerStore(tmp_path / "t.sqlite3")
    yield store
    store.close()


@pytest.fixture
def core(store):
    return ListenerCore(
        SipFeed(store, None),
        allowlist=Allowlist(parse_networks(["127.0.0.0/8"])),
        rate_limiter=RateLimiter(lambda: 0.0, rate=1, burst=20),
        audit=store.audit,
    )


def message(method="REGISTER", *headers, uri="sip:pbx.example.com", branch="z9hG4bK-1", body=b""):
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}",
        "From: <sip:1001@pbx.example.com>;tag=f1",
        "To: <sip:1001@pbx.example.com>",
        "Call-ID: reg-1@127.0.0.1",
        f"CSeq: 1 {method}",
        "Max-Forwards: 70",
        *headers,
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def answer(out):
    [raw] = out
    response = parse_message(raw)
    assert isinstance(response, SipResponse)
    return response


def test_register_records_the_phone_and_expires_zero_removes_it(core, store):
    response = answer(
        core.receive(
            message("REGISTER", "Contact: <sip:1001@127.0.0.1:5090>", "Expires: 600"), PHONE
        )
    )
    assert response.status == 200
    assert response.headers.get("Contact") == "<sip:1001@127.0.0.1:5090>;expires=600"
    phone = store.phone("1001")
    assert (phone.contact, phone.learned_from) == ("sip:1001@127.0.0.1:5090", "register")
    remove = message("REGISTER", "Contact: *", "Expires: 0", branch="z9hG4bK-2").replace(
        b"CSeq: 1", b"CSeq: 2"
    )
    assert answer(core.receive(remove, PHONE)).status == 200
    assert store.phones() == []


def test_retransmission_gets_the_same_response_and_is_handled_once(core, store):
    request = message("REGISTER", "Contact: <sip:1001@127.0.0.1:5090>")
    first = core.receive(request, PHONE)
    assert core.receive(request, PHONE) == first
    assert core.stats.retransmissions == 1


def test_stranger_gets_403_and_an_audit_record_when_udp_strangers_are_answered(store):
    core = ListenerCore(
        SipFeed(store, None),
        allowlist=Allowlist(parse_networks(["127.0.0.0/8"])),
        rate_limiter=RateLimiter(lambda: 0.0, rate=1, burst=20),
        audit=store.audit,
        answer_udp_strangers=True,
    )
    response = answer(core.receive(message("REGISTER", "Contact: <sip:1001@192.0.2.99>"), STRANGER))
    assert response.status == 403
    assert store.phones() == []
    [(_, source, action, detail)] = store.audit_records()
    assert (source, action) == ("udp:192.0.2.99:5060", "forbidden")
    assert detail.startswith("REGISTER sip:pbx.example.com")


def test_unsupported_method_is_405_with_allow(core):
    response = answer(core.receive(message("INVITE", "Contact: <sip:1001@h>"), PHONE))
    assert response.status == 405
    assert "REGISTER" in (response.headers.get("Allow") or "")


def test_malformed_but_answerable_is_400_and_garbage_is_dropped(core, store):
    bad = message("REGISTER", "Contact: <sip:1001@h>").replace(
        b"Content-Length: 0", b"Content-Length: 99"
    )
    response = answer(core.receive(bad, PHONE))
    assert response.status == 400
    assert core.receive(b"\x00\xff garbage", PHONE) == []
    assert core.receive(b"SIP/2.0 200 OK\r\n\r\n", PHONE) == []
    assert store.phones() == []


def test_unknown_event_and_unknown_subscription(core):
    assert answer(core.receive(message("NOTIFY", "Event: presence"), PHONE)).status == 489
    notify = message(
        "NOTIFY",
        "Event: dialog",
        "Subscription-State: active",
        uri="sip:sub-nope@127.0.0.1",
        branch="z9hG4bK-2",
    )
    assert answer(core.receive(notify, PHONE)).status == 481


def test_rate_limited_source_is_dropped(store):
    core = ListenerCore(
        SipFeed(store, None),
        allowlist=Allowlist(parse_networks(["127.0.0.0/8"])),
        rate_limiter=RateLimiter(lambda: 0.0, rate=1, burst=2),
        audit=store.audit,
    )
    outs = [core.receive(message("OPTIONS", branch=f"z9hG4bK-{n}"), PHONE) for n in range(4)]
    assert [len(o) for o in outs] == [1, 1, 0, 0]
    assert core.stats.rate_limited == 2


def test_reginfo_notify_registers_phones(core, store):
    body = b"""<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="full">
      <registration aor="sip:1002@pbx.example.com" id="r" state="active">
        <contact id="c" state="active" event="registered" expires="120"><uri>sip:1002@127.0.0.1:5091</uri></contact>
      </registration></reginfo>"""
    notify = message(
        "NOTIFY",
        "Event: reg",
        "Subscription-State: active",
        "Content-Type: application/reginfo+xml",
        uri="sip:sipbridge@127.0.0.1",
        body=body,
    )
    assert answer(core.receive(notify, PHONE)).status == 200
    phone = store.phone("1002")
    assert (phone.contact, phone.learned_from) == ("sip:1002@127.0.0.1:5091", "reginfo")


@pytest.mark.parametrize(
    ("contact", "transport"),
    [
        ("sips:1003@127.0.0.1:5061", "tls"),
        ("sip:1003@127.0.0.1:5091;transport=TCP", "tcp"),
        ("sip:1003@127.0.0.1:5091;transport=sctp", "udp"),
    ],
)
def test_a_reginfo_contact_keeps_the_transport_its_uri_implies(core, store, contact, transport):
    # RFC 3261 §26.2.2: a sips: contact is reached over TLS, never UDP.
    body = f"""<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="full">
      <registration aor="sip:1003@pbx.example.com" id="r" state="active">
        <contact id="c" state="active" event="registered" expires="120"><uri>{contact}</uri></contact>
      </registration></reginfo>""".encode()
    notify = message(
        "NOTIFY",
        "Event: reg",
        "Subscription-State: active",
        "Content-Type: application/reginfo+xml",
        uri="sip:sipbridge@127.0.0.1",
        body=body,
    )
    assert answer(core.receive(notify, PHONE)).status == 200
    assert store.phone("1003").transport == transport


def test_register_auth_challenges_then_accepts_only_the_phones_own_credentials(store):
    from sipbridge.sip import digest
    from sipbridge.tracker.sip_feed import RegisterAuth

    auth = RegisterAuth(realm="sipbridge", passwords={"1001": "pw-1001", "1002": "pw-1002"})
    core = ListenerCore(
        SipFeed(store, None, register_auth=auth),
        allowlist=Allowlist(parse_networks(["127.0.0.0/8"])),
        rate_limiter=RateLimiter(lambda: 0.0, rate=1, burst=20),
        audit=store.audit,
    )
    challenge = answer(core.receive(message("REGISTER", "Contact: <sip:1001@127.0.0.1:5090>"), PHONE))
    assert challenge.status == 401
    offered = challenge.headers.get_all("WWW-Authenticate")
    assert "algorithm=SHA-256" in offered[0] and "algorithm=MD5" in offered[1]
    nonce = offered[0].split('nonce="')[1].split('"')[0]

    def with_credentials(user, password, branch):
        params = {"username": user, "realm": "sipbridge", "uri": "sip:pbx.example.com",
                  "nonce": nonce, "nc": "00000001", "cnonce": "c", "qop": "auth"}
        response = digest.response_for(params, method="REGISTER", password=password, algorithm="SHA-256")
        header = (f'Authorization: Digest username="{user}", realm="sipbridge", nonce="{nonce}", '
                  f'uri="sip:pbx.example.com", nc=00000001, cnonce="c", qop=auth, '
                  f'algorithm=SHA-256, response="{response}"')
        return message("REGISTER", "Contact: <sip:1001@127.0.0.1:5090>", header, branch=branch)

    assert answer(core.receive(with_credentials("1002", "pw-1002", "z9hG4bK-2"), PHONE)).status == 403
    assert store.phones() == []
    ok = with_credentials("1001", "pw-1001", "z9hG4bK-3").replace(b"CSeq: 1", b"CSeq: 3")
    assert answer(core.receive(ok, PHONE)).status == 200
    assert store.phone("1001").contact == "sip:1001@127.0.0.1:5090"


@pytest.fixture
def guarded(store):
    from sipbridge.sip.networks import PhoneNetworks

    return ListenerCore(
        SipFeed(store, None, networks=PhoneNetworks.parse(["127.0.0.0/8"])),
        allowlist=Allowlist(parse_networks(["127.0.0.0/8"])),
        rate_limiter=RateLimiter(lambda: 0.0, rate=1, burst=20),
        audit=store.audit,
    )


def test_register_with_a_contact_outside_phone_networks_is_403_and_audited(guarded, store):
    """Issue #14 item 3: an admitted source cannot point a phone at any host."""
    request = message("REGISTER", "Contact: <sip:1001@192.0.2.1:5060>", "Expires: 600")
    response = answer(guarded.receive(request, PHONE))
    assert response.status == 403
    assert store.phones() == []
    [(_, source, action, detail)] = store.audit_records()
    assert (source, action) == ("udp:127.0.0.1:5060", "contact-refused")
    assert "192.0.2.1 is outside phone_networks" in detail
    # Inside, and a host name (judged after resolution, before sending), are recorded.
    ok = message("REGISTER", "Contact: <sip:1001@127.0.0.9:5060>", branch="z9hG4bK-2")
    assert answer(guarded.receive(ok.replace(b"CSeq: 1", b"CSeq: 2"), PHONE)).status == 200


def test_reginfo_contact_outside_phone_networks_is_not_recorded(guarded, store):
    body = b"""<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="full">
      <registration aor="sip:1002@pbx.example.com" id="r" state="active">
        <contact id="c" state="active" event="registered" expires="120"><uri>sip:1002@192.0.2.1:5091</uri></contact>
      </registration></reginfo>"""
    notify = message(
        "NOTIFY",
        "Event: reg",
        "Subscription-State: active",
        "Content-Type: application/reginfo+xml",
        uri="sip:sipbridge@127.0.0.1",
        body=body,
    )
    assert answer(guarded.receive(notify, PHONE)).status == 200
    assert store.phones() == []
    assert [a for _, _, a, _ in store.audit_records()] == ["contact-refused"]


class SlowRouter:
    """Answers every NOTIFY later, as the PBX relay does."""

    allowed_methods: tuple[str, ...] = ("NOTIFY", "ACK")

    def __init__(self):
        import asyncio

        self.release = asyncio.Event()

    def handle(self, request, source):
        from sipbridge.sip.listener import Reply

        async def later():
            await self.release.wait()
            return Reply(status=200, reason="OK")

        return later()


def statuses(out):
    return [answer([raw]).status for raw in out]


@pytest.mark.parametrize(("transport", "provisional"), [("udp", []), ("tcp", [100])])
async def test_a_deferred_non_invite_gets_no_100_over_udp(transport, provisional):
    """RFC 4320 §4.1: no 100 to a non-INVITE over UDP before Timer E reaches T2; any time over TCP."""
    router = SlowRouter()
    sent: list[bytes] = []
    core = ListenerCore(
        router,
        allowlist=Allowlist(parse_networks(["127.0.0.0/8"])),
        rate_limiter=RateLimiter(lambda: 0.0, rate=1, burst=20),
        audit=lambda *_: None,
    )
    source = Source(host="127.0.0.1", port=5060, transport=transport)
    request = message("NOTIFY", "Event: ACTION-URI")
    now = core.receive(request, source, sent.append)
    assert statuses(now) == provisional
    # A retransmission before the final answer: absorbed (or the 100 again), never relayed.
    again = core.receive(request, source, sent.append)
    assert statuses(again) == provisional
    router.release.set()
    await core.drain()
    assert statuses(sent) == [200]


def test_default_settings_admit_loopback_only(store, monkeypatch):
    # Issue #23: widening the default allowlist must fail a test, not slip through.
    from sipbridge.config import Settings

    monkeypatch.delenv("SIPBRIDGE_SIP_ALLOW", raising=False)
    settings = Settings()
    assert settings.sip_allow == ("127.0.0.0/8", "::1")
    core = ListenerCore(
        SipFeed(store, None),
        allowlist=Allowlist(parse_networks(settings.sip_allow)),
        rate_limiter=RateLimiter(lambda: 0.0, rate=1, burst=20),
        audit=store.audit,
    )
    for host in ("192.0.2.99", "10.0.0.5", "2001:db8::5", "::ffff:192.0.2.99"):
        stranger = Source(host=host, port=5060, transport="udp")
        # Refused: over UDP a stranger gets no answer by default (sip_stranger_udp = drop),
        # but the refusal is audited.
        assert core.receive(message("OPTIONS"), stranger) == [], host
    refused = {source for _, source, action, _ in store.audit_records() if action == "forbidden"}
    assert len(refused) == 4, refused
    for n, host in enumerate(("127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1")):
        loopback = Source(host=host, port=5060, transport="udp")
        reply = answer(core.receive(message("OPTIONS", branch=f"z9hG4bK-l{n}"), loopback))
        assert reply.status != 403, host
    assert store.phones() == []
