"""Hypothesis over the listener core: mutated corpus messages in, only sane answers out.

Seeds are the RFC 4475 / RFC 5118 messages and a sample of PROTOS c07-sip INVITEs, read by
test_corpus's loader from the shared corpus (never copied here). Mutations: byte flips,
truncation, header duplication, splicing two messages, huge or negative Content-Length, CR / LF /
NUL injection, a response start line. Each goes through the core as a datagram and as a stream
(in one piece, byte by byte and in random chunks), from admitted and stranger sources.

Invariants: nothing raises; every answer is one SIP response our own parser accepts, or a 400 /
403 salvaged from a refused request whose framing is sound (`_check_salvaged`); an answer is at
most twice the input plus a little (no amplification); a response or an ACK is never answered;
the router never fails (no 500 Server Internal Error); stream framing does not depend on how the
bytes were chunked; the core's tables and the audit table stay within their caps over the run.
"""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from sipbridge.sip.access import Allowlist, RateLimiter, TokenBucket, parse_networks
from sipbridge.sip.listener import ListenerCore, Source
from sipbridge.sip.message import (
    SipMessage,
    SipParseError,
    SipRequest,
    SipResponse,
    StreamParser,
    parse_message,
)
from sipbridge.tracker import TrackerStore
from sipbridge.tracker.sip_feed import SipFeed
from tests.unit.sip.test_corpus import CORPUS, LABELS, _require_corpus, protos_pdus

_REPO = Path(__file__).resolve().parents[3]
# The example database in a gitignored directory of the worktree, whatever the working directory.
FUZZ = settings(
    max_examples=500,
    deadline=None,
    database=DirectoryBasedExampleDatabase(_REPO / ".hypothesis" / "listener-fuzz"),
    suppress_health_check=[HealthCheck.too_slow],
)
STRANGER_BURST = 50
MAX_SOURCES = 64
MAX_STREAM_BUFFER = 64 * 1024


def _seeds() -> list[bytes]:
    rfc = [
        (CORPUS / k).read_bytes() for k in sorted(LABELS) if k.startswith(("rfc4475/", "rfc5118/"))
    ]
    protos = sorted(k for k in LABELS if k.startswith("protos/"))[::60]
    return rfc + [protos_pdus((CORPUS / k).read_bytes())[0] for k in protos]


SEEDS = _seeds() if LABELS else [b""]
SOURCES = [
    Source(host="127.0.0.1", port=5060, transport="udp"),
    Source(host="127.0.0.7", port=5070, transport="udp"),
    Source(host="192.0.2.9", port=5060, transport="udp"),  # a stranger
]


class _Frozen:
    """A clock that never moves: the budgets never refill, so their caps hold for the whole run."""

    def __call__(self) -> float:
        return 0.0


def _core() -> tuple[ListenerCore, TrackerStore]:
    clock = _Frozen()
    store = TrackerStore(":memory:")
    core = ListenerCore(
        SipFeed(store, None),
        allowlist=Allowlist(parse_networks(["127.0.0.0/8"])),
        rate_limiter=RateLimiter(clock, rate=1.0, burst=10**9, max_sources=MAX_SOURCES),
        audit=store.audit,
        stranger_budget=TokenBucket(clock, rate=1.0, burst=STRANGER_BURST),
        answer_udp_strangers=True,
        clock=clock,
    )
    return core, store


# One core for the whole module, so state carried from example to example is bounded too.
CORE, STORE = _core()


def _header_lines(data: bytearray) -> list[tuple[int, int]]:
    """(start, end) of each header line, CRLF included, before the first empty line."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        head_end = len(data)
    lines = []
    start = data.find(b"\r\n") + 2
    while 1 < start < head_end:
        end = data.find(b"\r\n", start)
        if end < 0 or end > head_end:
            break
        lines.append((start, end + 2))
        start = end + 2
    return lines


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(
            st.sampled_from(
                ["flip", "truncate", "dup-header", "splice", "content-length", "inject", "response"]
            )
        )
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[pos:]
        elif op == "dup-header":
            lines = _header_lines(data)
            if lines:
                start, end = draw(st.sampled_from(lines))
                data[start:start] = data[start:end] * draw(st.integers(1, 40))
        elif op == "splice":
            other = draw(st.sampled_from(SEEDS))
            data = data[:pos] + other[draw(st.integers(0, max(0, len(other) - 1))) :]
        elif op == "content-length":
            value = draw(
                st.sampled_from([b"99999999999999999999", b"4294967296", b"-1", b"1e3", b" 0 0"])
                | st.integers(0, 2**70).map(lambda n: str(n).encode())
            )
            at = data.lower().find(b"content-length:")
            if at >= 0:
                end = data.find(b"\r\n", at)
                data[at + 15 : end if end >= 0 else len(data)] = b" " + value
            else:
                data[pos:pos] = b"\r\nContent-Length: " + value
        elif op == "inject":
            data[pos:pos] = draw(
                st.sampled_from([b"\r", b"\n", b"\x00", b"\r\n", b"\r\n\r\n", b"\r\n ", b"\n\n"])
            )
        elif op == "response" and data:
            line_end = data.find(b"\r\n")
            data[: line_end if line_end >= 0 else len(data)] = b"SIP/2.0 200 OK"
    return bytes(data)


def _is_response_or_ack(data: bytes) -> bool:
    start = data.lstrip(b"\r\n")
    return start.startswith(b"SIP/") or start.startswith(b"ACK ")


_SALVAGED_HEADERS = {"Via", "From", "To", "Call-ID", "CSeq", "Content-Length"}
_START_LINE = re.compile(rb"SIP/2\.0 (400|403) [\x20-\x7e]+")


def _check_salvaged(out: bytes, request: bytes) -> None:
    """A 400 / 403 built from the raw lines of a request the parser refused (RFC 3261 §8.2.6.2
    wants Via, From, To, Call-ID and CSeq copied as they came). Its values are the sender's own,
    so our strict parser may refuse them (RFC 4475 §3.1.2.14, spaces in an addr-spec); its
    framing must still be sound: one header section, no CR, LF or NUL inside a line, nothing but
    the copied headers, no body, and every copied value found in the request itself."""
    assert out.endswith(b"\r\n\r\n") and out.count(b"\r\n\r\n") == 1
    lines = out[:-4].split(b"\r\n")
    assert _START_LINE.fullmatch(lines[0]), lines[0]
    raw = request.decode("latin-1")
    for line in lines[1:]:
        assert not any(c in line for c in b"\r\n\x00")
        name, _, value = line.decode("latin-1").partition(": ")
        assert name in _SALVAGED_HEADERS, name
        if name == "Content-Length":
            assert value == "0"
        elif name != "To":  # To may have gained our tag
            assert value in raw


def _check_answers(outs: list[bytes], request: bytes) -> None:
    assert len(outs) <= 1
    if not outs:
        event("no answer")
    for out in outs:
        # A REGISTER's 200 lists the current binding (RFC 3261 §10.3 step 8), which an earlier
        # example may have left in the shared store: bounded, but not by this request alone.
        assert len(out) <= 2 * len(request) + 4096
        try:
            response = parse_message(out)
        except SipParseError:
            event("answer echoing values our parser refuses")
            _check_salvaged(out, request)
            continue
        assert isinstance(response, SipResponse)
        event(f"answer {response.status}")
        assert response.reason != "Server Internal Error"  # the router never crashed
        assert 100 <= response.status <= 699
    sizes = CORE.table_sizes()
    assert sizes["rate_limiter"] <= MAX_SOURCES
    assert sizes["transactions"] <= 20_000
    assert STORE.audit_count() <= STRANGER_BURST


@given(data=mutated(), source=st.sampled_from(SOURCES))
@FUZZ
def test_datagrams_get_only_well_formed_bounded_answers(data: bytes, source: Source) -> None:
    _require_corpus()
    outs = CORE.receive(data, source)
    _check_answers(outs, data)
    if _is_response_or_ack(data):
        assert outs == []


def _frame(data: bytes, chunks: list[int]) -> tuple[list[SipMessage], bool]:
    """The messages a stream parser frames from `data` fed in pieces of `chunks` sizes (cycled),
    and whether the stream broke."""
    parser = StreamParser(max_buffer=MAX_STREAM_BUFFER)
    messages: list[SipMessage] = []
    at = 0
    turn = 0
    try:
        while at < len(data):
            size = chunks[turn % len(chunks)]
            turn += 1
            parser.feed(data[at : at + size])
            at += size
            while (message := parser.next_message()) is not None:
                messages.append(message)
    except SipParseError:
        return messages, True
    return messages, False


@given(
    data=st.lists(mutated(), min_size=1, max_size=3).map(b"".join),
    chunks=st.lists(st.integers(1, 2048), min_size=1, max_size=8),
    stranger=st.booleans(),
)
@FUZZ
def test_streams_frame_alike_however_chunked_and_get_sane_answers(
    data: bytes, chunks: list[int], stranger: bool
) -> None:
    _require_corpus()
    whole, whole_broke = _frame(data, [len(data) or 1])
    pieces, pieces_broke = _frame(data, chunks)
    assert pieces == whole and pieces_broke == whole_broke
    if len(data) <= 4096:
        single, single_broke = _frame(data, [1])
        assert single == whole and single_broke == whole_broke
    source = Source(host="192.0.2.9" if stranger else "127.0.0.1", port=5060, transport="tcp")
    for message in whole:
        outs = CORE.receive_message(message, source)
        _check_answers(outs, data)
        if not isinstance(message, SipRequest) or message.method == "ACK":
            assert outs == []
