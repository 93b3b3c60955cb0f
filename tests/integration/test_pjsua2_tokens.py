"""The request token handed to pjsua2 as userData must not leak (found by bench/run --soak).

SWIG disowns an object assigned to a `Token` (void *) member, so the C++ object behind a token
would outlive its Python proxy: about 110 bytes for every command sent. These tests run the
binding itself; they fail if `_attach_token` stops taking ownership back.
"""

from __future__ import annotations

from pathlib import Path

import pjsua2 as pj

from sipbridge.sip._pjsua2 import _attach_token

ROUNDS = 200_000


def _anonymous_kb() -> int:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Anonymous:"):
            return int(line.split()[1])
    raise AssertionError("no Anonymous line in smaps_rollup")


def test_the_token_is_attached_and_owned_by_python():
    param = pj.SendRequestParam()
    token = _attach_token(param)
    assert token.thisown  # deleted with its proxy, not left to the C++ side
    assert int(param.userData) == int(token.this)  # what onSendRequest hands back


def test_a_plain_assignment_is_what_leaks():
    # The binding's behaviour that makes _attach_token necessary: if pjsua2 ever keeps
    # ownership itself, this test says so and the re-own in _attach_token can go.
    token = pj.SipHeader()
    pj.SendRequestParam().userData = token
    assert not token.thisown
    token.thisown = True


def test_many_tokens_leave_memory_flat():
    before = _anonymous_kb()
    for _ in range(ROUNDS):
        _attach_token(pj.SendRequestParam())
    grown_mb = (_anonymous_kb() - before) / 1024
    # Disowned tokens would keep ~21 MB here (110 bytes each); owned ones free it as they go.
    assert grown_mb < 8, f"{grown_mb:.1f} MB kept after {ROUNDS} tokens"
