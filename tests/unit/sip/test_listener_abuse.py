"""What strangers and floods may cost the listener core (sans-I/O): limits come before answers.

Issue #14 item 5: strangers were never limited (a reflector with spoofed UDP sources), the audit
table grew per packet, and a TCP request over the rate vanished without an answer.
"""

from __future__ import annotations

import pytest

from sipbridge.sip.access import (
    Allowlist,
    ConnectionLimits,
    RateLimiter,
    TokenBucket,
    parse_networks,
)
from sipbridge.sip.listener import ListenerCore, Source
from sipbridge.sip.message import SipResponse, StreamParser, parse_message
from sipbridge.tracker import TrackerStore
from sipbridge.tracker.sip_feed import SipFeed
from tests.unit.sip.test_listener_core import message

PHONE_TCP = Source(host="127.0.0.1", port=5060, transport="tcp")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path):
    store = TrackerStore(tmp_path / "t.sqlite3")
    yield store
    store.close()


@pytest.fixture
def clock():
    return Clock()


def make_core(store, clock, *, answer_udp=False, rate=1.0, burst=20, stranger_burst=10):
    return ListenerCore(
        SipFeed(store, None),
        allowlist=Allowlist(parse_networks(["127.0.0.0/8", "10.0.0.0/8"])),
        rate_limiter=RateLimiter(clock, rate=rate, burst=burst, max_sources=1000),
        audit=store.audit,
        stranger_budget=TokenBucket(clock, rate=2.0, burst=stranger_burst),
        answer_udp_strangers=answer_udp,
        clock=clock,
    )


def stranger(n: int, transport: str = "udp") -> Source:
    return Source(host=f"192.0.2.{n % 250 + 1}", port=5060 + n, transport=transport)


def frame(raw: bytes):
    parser = StreamParser()
    parser.feed(raw)
    framed = parser.next_message()
    assert framed is not None
    return framed


def test_udp_strangers_are_dropped_by_default_and_audited_within_the_budget(store, clock):
    core = make_core(store, clock)
    outs = [
        core.receive(message("OPTIONS", branch=f"z9hG4bK-{n}"), stranger(n)) for n in range(300)
    ]
    assert sum(len(o) for o in outs) == 0
    assert store.audit_count() == 10
    assert core.stats.forbidden == 300 and core.stats.strangers_unrecorded == 290


def test_udp_stranger_answers_share_one_budget_across_spoofed_sources(store, clock):
    core = make_core(store, clock, answer_udp=True)
    outs = [
        core.receive(message("OPTIONS", branch=f"z9hG4bK-{n}"), stranger(n)) for n in range(300)
    ]
    answered = [o for o in outs if o]
    assert len(answered) == 10
    assert all(parse_message(o[0]).status == 403 for o in answered)  # type: ignore[union-attr]
    assert store.audit_count() == 10
    clock.now += 1.0  # two more tokens a second
    later = [
        core.receive(message("OPTIONS", branch=f"z9hG4bK-x{n}"), stranger(n)) for n in range(50)
    ]
    assert sum(len(o) for o in later) == 2


def test_the_next_audit_record_counts_the_unrecorded_ones(store, clock):
    core = make_core(store, clock, stranger_burst=1)
    for n in range(5):
        core.receive(message("OPTIONS", branch=f"z9hG4bK-{n}"), stranger(n))
    clock.now += 1.0
    core.receive(message("REGISTER", branch="z9hG4bK-last"), stranger(7))
    newest, first = store.audit_records()
    assert first[3].startswith("OPTIONS sip:pbx.example.com") and "unrecorded" not in first[3]
    assert newest[3].startswith("REGISTER sip:pbx.example.com")
    assert newest[3].endswith("[+4 refused unrecorded before this]")


def test_stream_strangers_get_403_within_the_budget_and_acks_or_responses_nothing(store, clock):
    core = make_core(store, clock, stranger_burst=3)
    tcp = stranger(1, "tcp")
    assert core.receive_message(frame(message("ACK")), tcp) == []
    response = frame(
        message("OPTIONS").replace(b"OPTIONS sip:pbx.example.com SIP/2.0", b"SIP/2.0 200 OK")
    )
    assert core.receive_message(response, tcp) == []
    [raw] = core.receive_message(frame(message("OPTIONS")), tcp)
    assert parse_message(raw).status == 403  # type: ignore[union-attr]
    assert core.receive_message(frame(message("OPTIONS", branch="z9hG4bK-2")), tcp) == []
    assert store.audit_count() == 3


def test_stranger_connections_are_refused_and_recorded_within_the_budget(store, clock):
    core = make_core(store, clock, stranger_burst=2)
    assert core.connection_opened(PHONE_TCP)
    assert not any(core.connection_opened(stranger(n, "tcp")) for n in range(10))
    assert store.audit_count() == 2
    assert [r[3] for r in store.audit_records()][-1] == "connection"


def test_stream_request_over_the_rate_gets_503_with_retry_after(store, clock):
    core = make_core(store, clock, rate=0.5, burst=2)
    outs = [
        core.receive_message(frame(message("OPTIONS", branch=f"z9hG4bK-{n}")), PHONE_TCP)
        for n in range(6)
    ]
    assert all(len(o) == 1 for o in outs)  # one answer per request: none vanishes
    statuses = [parse_message(o[0]) for o in outs]
    assert all(isinstance(r, SipResponse) for r in statuses)
    assert [r.status for r in statuses] == [200, 200, 503, 503, 503, 503]  # type: ignore[union-attr]
    assert statuses[2].headers.get("Retry-After") == "2"
    assert core.stats.rate_limited == 4
    ack = frame(message("ACK", branch="z9hG4bK-ack"))
    assert core.receive_message(ack, PHONE_TCP) == []  # never a response to an ACK (§17.2.1)


def test_udp_request_over_the_rate_is_dropped(store, clock):
    core = make_core(store, clock, burst=2)
    udp = Source(host="127.0.0.1", port=5060, transport="udp")
    outs = [core.receive(message("OPTIONS", branch=f"z9hG4bK-{n}"), udp) for n in range(4)]
    assert [len(o) for o in outs] == [1, 1, 0, 0]


def test_per_source_state_stays_bounded_under_many_sources(store, clock):
    core = make_core(store, clock, burst=1)
    for n in range(3000):
        source = Source(
            host=f"10.{n // 65536}.{n // 256 % 256}.{n % 256}", port=5060, transport="udp"
        )
        for repeat in range(2):  # the second is over the rate
            core.receive(message("OPTIONS", branch=f"z9hG4bK-{n}-{repeat}"), source)
    for n in range(3000):
        core.receive(message("OPTIONS", branch=f"z9hG4bK-s{n}"), stranger(n))
    sizes = core.table_sizes()
    assert sizes["rate_limiter"] <= 1000
    assert sizes["transactions"] <= 20_000
    assert core.stats.rate_limited == 3000
    assert store.audit_count() == 10


def test_token_bucket_refills_at_its_rate_up_to_its_burst(clock):
    bucket = TokenBucket(clock, rate=2.0, burst=3)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5
    assert [bucket.take() for _ in range(2)] == [True, False]
    clock.now += 100
    assert sum(bucket.take() for _ in range(10)) == 3


def test_retry_after_is_the_wait_for_the_next_token(clock):
    limiter = RateLimiter(clock, rate=0.25, burst=1)
    assert limiter.allow("h") and not limiter.allow("h")
    assert limiter.retry_after("h") == 4
    assert limiter.retry_after("unknown") == 1


def test_connection_limits_per_source_and_in_total():
    limits = ConnectionLimits(max_total=3, max_per_source=2)
    assert limits.open("a") is None and limits.open("a") is None
    assert limits.open("a") is not None  # third from one source
    assert limits.open("b") is None
    assert limits.open("c") is not None  # fourth in total
    limits.close("a")
    assert limits.open("c") is None
    for host in ("a", "b", "c"):
        limits.close(host)
    limits.close("never-opened")
    assert (limits.total, len(limits)) == (0, 0)


def test_prune_audit_by_row_count_and_age_in_short_batches(tmp_path):
    now = [0.0]
    store = TrackerStore(tmp_path / "a.sqlite3", clock=lambda: now[0])
    try:
        for n in range(300):
            now[0] = float(n)
            store.audit("udp:192.0.2.1:5060", "forbidden", f"row {n}")
        assert store.prune_audit(keep=200, max_age=1e9, at_most=40) == 40
        assert store.prune_audit(keep=200, max_age=1e9) == 60
        assert store.audit_count() == 200
        assert store.prune_audit(keep=200, max_age=1e9) == 0
        now[0] = 349.5  # rows at 100..149 are more than 200 s old
        assert store.prune_audit(keep=200, max_age=200) == 50
        assert store.audit_records(limit=1000)[-1][3] == "row 150"
        now[0] = 1e6
        assert store.prune_audit(keep=200, max_age=200) == 150
        assert store.audit_count() == 0
    finally:
        store.close()
