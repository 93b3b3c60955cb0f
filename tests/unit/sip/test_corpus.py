"""The parser against public torture corpora: RFC 4475, RFC 5118 and PROTOS c07-sip.

The corpus is read from `$SIPBRIDGE_SIP_CORPUS`, else `<repo>/../shared/sip-corpus`, and is
never copied into the project. A missing corpus fails these tests (CI always has it).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipbridge.sip.message import SipParseError, SipRequest, SipResponse, parse_message, serialize

_REPO = Path(__file__).resolve().parents[3]
CORPUS = Path(os.environ.get("SIPBRIDGE_SIP_CORPUS") or _REPO.parent / "shared" / "sip-corpus")
MISSING = (
    f"SIP corpus not found at {CORPUS}: set SIPBRIDGE_SIP_CORPUS to the directory that holds "
    "labels.json, rfc4475/, rfc5118/ and protos/"
)


def _labels() -> dict[str, dict[str, Any]]:
    path = CORPUS / "labels.json"
    if not path.is_file():
        return {}
    labels: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return labels


LABELS = _labels()

# Labelled invalid by the corpus, but well-formed: RFC 4475 itself says a parser accepts them and
# the element above the parser (transaction layer, UAS, proxy, registrar) rejects or handles
# them. Kept minimal; every other label is followed.
PARSER_ACCEPTS: dict[str, str] = {
    "rfc4475/badbranch.dat": (
        "RFC 4475 §3.2.1: a branch of just the magic cookie; 'a parser must not break' - the "
        "transaction layer may answer 400 or fall back to RFC 2543 matching"
    ),
    "rfc4475/bext01.dat": (
        "RFC 4475 §3.3.5: well-formed; a UAS answers 420 Bad Extension for the unknown Require "
        "option tags (RFC 3261 §8.2.2.3), a proxy for Proxy-Require"
    ),
    "rfc4475/regaut01.dat": (
        "RFC 4475 §3.3.7: well-formed; a registrar ignores the unknown Authorization scheme and "
        "challenges with 401"
    ),
    "rfc4475/zeromf.dat": (
        "RFC 4475 §3.3.11: a legal request; a proxy answers 483, an endpoint processes it as if "
        "Max-Forwards were positive"
    ),
    "rfc4475/bcast.dat": (
        "RFC 4475 §3.3.10: well-formed 200 OK; the element must not forward the response to the "
        "broadcast address in the second Via"
    ),
}


def _table_cases() -> list[Any]:
    if not LABELS:
        return [pytest.param("", id="corpus-missing")]
    keys = sorted(k for k in LABELS if k.startswith(("rfc4475/", "rfc5118/")))
    return [pytest.param(k, id=k) for k in keys]


def _require_corpus() -> None:
    if not LABELS:
        pytest.fail(MISSING)


def test_table_covers_every_file() -> None:
    _require_corpus()
    on_disk = {
        f"{folder}/{p.name}"
        for folder in ("rfc4475", "rfc5118")
        for p in (CORPUS / folder).iterdir()
        if p.is_file()
    }
    labelled = {k for k in LABELS if k.startswith(("rfc4475/", "rfc5118/"))}
    assert on_disk == labelled
    assert len(on_disk) == 61
    assert set(PARSER_ACCEPTS) <= labelled


@pytest.mark.parametrize("key", _table_cases())
def test_rfc_corpus(key: str) -> None:
    _require_corpus()
    data = (CORPUS / key).read_bytes()
    label = LABELS[key]
    if label["label"] == "valid" or key in PARSER_ACCEPTS:
        msg = parse_message(data)
        kind = SipRequest if label["kind"] == "request" else SipResponse
        assert isinstance(msg, kind)
        assert parse_message(serialize(msg)) == msg
        assert serialize(parse_message(serialize(msg))) == serialize(msg)
    else:
        with pytest.raises(SipParseError) as info:
            parse_message(data)
        assert info.value.reason.isascii() and info.value.reason.isprintable()


# -- PROTOS c07-sip ------------------------------------------------------------------------------

# Sane values for the PROTOS placeholders (SOURCES.md); Content-Length is computed per case.
_PLACEHOLDERS = {
    b"<To>": b"receiver@receiver.example.com",
    b"<From>": b"sender@sender.example.com",
    b"<From-Address>": b"client.example.com",
    b"<From-IP>": b"192.0.2.1",
    b"<Local-Port>": b"5060",
    b"<Branch-ID>": b"0123456789abcdef",
    b"<Call-ID>": b"0123456789abcdef0123456789abcdef",
    b"<CSeq>": b"9000",
    b"<Teardown-Method>": b"CANCEL",
}


def _fill(pdu: bytes) -> bytes:
    for placeholder, value in _PLACEHOLDERS.items():
        pdu = pdu.replace(placeholder, value)
    end = pdu.find(b"\r\n\r\n")
    length = len(pdu) - (end + 4) if end >= 0 else 0
    return pdu.replace(b"<Content-Length>", str(length).encode())


def protos_pdus(raw: bytes) -> tuple[bytes, bytes]:
    """(INVITE, teardown) from `<len> <INVITE PDU><len> <teardown PDU>`, placeholders filled."""
    space = raw.index(b" ")
    size = int(raw[:space])
    invite = raw[space + 1 : space + 1 + size]
    rest = raw[space + 1 + size :]
    space = rest.index(b" ")
    teardown = rest[space + 1 : space + 1 + int(rest[:space])]
    return _fill(invite), _fill(teardown)


# What this parser reaches against php-sip's MUST_PASS / MUST_FAIL labels, minus a small margin.
# The labels come from a deliberately lax parser: most "must pass" misses are inputs RFC 3261
# calls malformed (Latin-1 or NUL bytes in headers, no To header, garbage hosts and ports).
MIN_AGREEMENT = 0.75
MIN_MUST_FAIL_AGREEMENT = 0.97
MAX_SECONDS = 20.0


def test_protos() -> None:
    _require_corpus()
    cases = sorted(k for k in LABELS if k.startswith("protos/"))
    assert len(cases) == 4527
    pdus = [(k, *protos_pdus((CORPUS / k).read_bytes())) for k in cases]

    started = time.perf_counter()
    unexpected: list[str] = []
    agree: Counter[tuple[str, bool]] = Counter()
    by_group: Counter[tuple[str, bool]] = Counter()
    for key, invite, teardown in pdus:
        outcome = "valid"
        for pdu in (invite, teardown):
            try:
                msg = parse_message(pdu)
            except SipParseError:
                if pdu is invite:
                    outcome = "invalid"
                continue
            except Exception as exc:  # the property under test: nothing else escapes
                unexpected.append(f"{key}: {exc!r}")
                continue
            if parse_message(serialize(msg)) != msg:
                unexpected.append(f"{key}: round trip changed the message")
        label = LABELS[key]
        if not label.get("exempt"):
            agree[(label["label"], outcome == label["label"])] += 1
            by_group[(label["group"], outcome == label["label"])] += 1
    elapsed = time.perf_counter() - started

    assert not unexpected, unexpected[:10]
    total = sum(agree.values())
    overall = (agree[("valid", True)] + agree[("invalid", True)]) / total
    must_fail = agree[("invalid", True)] / (agree[("invalid", True)] + agree[("invalid", False)])
    must_pass = agree[("valid", True)] / (agree[("valid", True)] + agree[("valid", False)])
    print(
        f"\nPROTOS: {total} non-exempt cases, agreement {overall:.1%} "
        f"(must-pass {must_pass:.1%}, must-fail {must_fail:.1%}), {elapsed:.2f}s"
    )
    for group in sorted({g for g, _ in by_group}):
        if by_group[(group, False)]:
            print(f"  {group}: {by_group[(group, True)]} agree, {by_group[(group, False)]} differ")
    assert overall >= MIN_AGREEMENT
    assert must_fail >= MIN_MUST_FAIL_AGREEMENT
    assert elapsed < MAX_SECONDS


# -- mutated corpus ------------------------------------------------------------------------------

_VALID_BLOBS = [
    (CORPUS / k).read_bytes()
    for k in sorted(LABELS)
    if k.startswith(("rfc4475/", "rfc5118/")) and LABELS[k]["label"] == "valid"
]


@st.composite
def mutated_corpus(draw: st.DrawFn) -> bytes:
    if not _VALID_BLOBS:
        return b""
    data = bytearray(draw(st.sampled_from(_VALID_BLOBS)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "duplicate", "truncate"]))
        pos = draw(st.integers(0, len(data) - 1)) if data else 0
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(
                st.sampled_from([b"\r\n", b"\r\n ", b" ", b";", b",", b'"', b"<", b">", b"\x00"])
                | st.binary(min_size=1, max_size=4)
            )
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "duplicate":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 40))]
        else:
            del data[pos:]
    return bytes(data)


@given(mutated_corpus())
@settings(max_examples=1000, deadline=None)
def test_mutated_corpus_parses_or_raises(data: bytes) -> None:
    _require_corpus()
    try:
        msg = parse_message(data)
    except SipParseError:
        return
    assert parse_message(serialize(msg)) == msg
