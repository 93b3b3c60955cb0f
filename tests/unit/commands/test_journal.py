"""The command log: how each command ended, from the error's own facts, before the answer."""

from __future__ import annotations

import logging

import pytest

from sipbridge import errors
from sipbridge.commands.journal import Completed, Journal
from sipbridge.commands.outcome import CommandResult
from sipbridge.tracker import TrackerStore
from sipbridge.tracker.group_commit import GroupCommit


@pytest.fixture
def store(tmp_path):
    store = TrackerStore(tmp_path / "t.sqlite3")
    yield store
    store.close()


@pytest.fixture
def log(store):
    return Journal(GroupCommit(store))


async def failing(exc: errors.SipBridgeError) -> Completed:
    raise exc


async def succeeding() -> Completed:
    return Completed(result=result())


def result() -> CommandResult:
    return CommandResult(
        phone="1001",
        call_id="c@h",
        command_uri="/api/v1/callctrl/holdCall",
        transport="sip",
        sip_status=202,
        sip_reason="Accepted",
        latency_ms=1.5,
    )


async def test_a_phone_rejection_is_logged_with_its_facts_and_passes_through(log, store):
    exc = errors.PhoneRejected(
        "the phone answered 486 Busy Here", sip_status=486, sip_reason="Busy Here"
    )
    exc.context.update(
        phone="1001", call_id="c@h", command_uri="/api/v1/callctrl/holdCall", transport="sip"
    )
    with pytest.raises(errors.PhoneRejected) as info:
        await log.run("http:127.0.0.1", failing(exc))
    assert info.value is exc
    [entry] = store.command_log()
    assert (entry.source, entry.outcome, entry.reason) == (
        "http:127.0.0.1",
        "PhoneRejected",
        "the phone answered 486 Busy Here",
    )
    assert (entry.phone_id, entry.call_id, entry.command_uri, entry.transport, entry.status) == (
        "1001",
        "c@h",
        "/api/v1/callctrl/holdCall",
        "sip",
        486,
    )


async def test_a_refusal_before_the_phone_is_known_has_only_source_and_reason(log, store):
    with pytest.raises(errors.UnknownCall):
        await log.run("sip:udp:127.0.0.1:5060", failing(errors.UnknownCall("no call x@h")))
    [entry] = store.command_log()
    assert (entry.source, entry.outcome, entry.reason) == (
        "sip:udp:127.0.0.1:5060",
        "UnknownCall",
        "no call x@h",
    )
    assert (entry.phone_id, entry.call_id, entry.command_uri, entry.transport, entry.status) == (
        (None,) * 5
    )


async def test_a_long_reason_is_cut_to_500_characters(log, store):
    with pytest.raises(errors.PhoneUnreachable):
        await log.run("http:x", failing(errors.PhoneUnreachable("x" * 2000)))
    [entry] = store.command_log()
    assert entry.reason == "x" * 500 and entry.status is None


async def test_success_is_logged_with_the_phones_status_and_reason(log, store):
    result = await log.run("http:x", succeeding())
    assert result.sip_status == 202
    [entry] = store.command_log()
    assert (entry.outcome, entry.reason, entry.status, entry.latency_ms) == (
        "ok",
        "Accepted",
        202,
        1.5,
    )


async def test_the_entry_is_committed_before_run_returns(log, store, tmp_path):
    import sqlite3

    peer = sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None)
    try:
        with pytest.raises(errors.PhoneTimeout):
            await log.run("http:x", failing(errors.PhoneTimeout("no answer", sent=True)))
        assert list(peer.execute("SELECT outcome FROM commands")) == [("PhoneTimeout",)]
        await log.run("http:x", succeeding())
        assert list(peer.execute("SELECT outcome FROM commands ORDER BY id")) == [
            ("PhoneTimeout",),
            ("ok",),
        ]
    finally:
        peer.close()


async def test_a_failed_log_write_is_logged_and_the_commands_own_outcome_stands(
    log, store, caplog, monkeypatch
):
    def broken(entry):
        raise errors.StoreError("database is locked")

    monkeypatch.setattr(store, "log_command", broken)
    with caplog.at_level(logging.ERROR, logger="sipbridge.commands.journal"):
        assert (await log.run("http:x", succeeding())).sip_status == 202
        with pytest.raises(errors.PhoneTimeout):
            await log.run("http:x", failing(errors.PhoneTimeout("no answer", sent=True)))
    assert caplog.text.count("command log write failed: database is locked") == 2


def _with_call(store):
    store.register_phone(
        "1001", contact="sip:1001@10.0.0.5", transport="udp", expires=600, aor="sip:1001@h"
    )
    store.record_call("c@h", phone_id="1001", state="connected")


async def test_the_state_change_and_the_entry_commit_in_one_write(log, store, tmp_path):
    import sqlite3

    _with_call(store)
    peer = sqlite3.connect(tmp_path / "t.sqlite3", isolation_level=None)
    seen: list[object] = []

    def change() -> None:
        store.set_call_state("c@h", "held")
        # Inside the write: the peer sees neither the state nor the entry yet.
        seen.append(list(peer.execute("SELECT count(*) FROM commands")))

    async def held() -> Completed:
        return Completed(result=result(), change=change)

    try:
        await log.run("http:x", held())
        assert seen == [[(0,)]]
        assert list(peer.execute("SELECT state FROM calls")) == [("held",)]
        assert list(peer.execute("SELECT outcome FROM commands")) == [("ok",)]
    finally:
        peer.close()


async def test_a_failed_state_change_fails_the_command_and_is_still_logged(log, store):
    def change() -> None:
        raise errors.StoreError("disk I/O error")

    async def done() -> Completed:
        return Completed(result=result(), change=change)

    with pytest.raises(errors.StoreError) as info:
        await log.run("http:x", done())
    assert "carried out the command" in info.value.detail
    assert info.value.context["phone"] == "1001"
    [entry] = store.command_log()
    assert entry.outcome == "ok"  # what the phone did stays true


async def test_a_failed_log_write_keeps_the_state_change(log, store, monkeypatch):
    _with_call(store)

    def broken(entry):
        raise errors.StoreError("database is locked")

    monkeypatch.setattr(store, "log_command", broken)

    async def done() -> Completed:
        return Completed(result=result(), change=lambda: store.set_call_state("c@h", "held"))

    assert (await log.run("http:x", done())).sip_status == 202
    assert store.call("c@h").state == "held"


async def test_a_late_2xx_records_its_outcome_and_its_state_change_together(log, store):
    import asyncio

    _with_call(store)
    late: asyncio.Future[Completed] = asyncio.get_running_loop().create_future()
    timeout = errors.PhoneTimeout("no answer in time", sent=True, late=late)
    with pytest.raises(errors.PhoneTimeout):
        await log.run("http:x", failing(timeout))
    assert store.call("c@h").state == "connected"
    late.set_result(Completed(result=result(), change=lambda: store.set_call_state("c@h", "held")))
    for _ in range(5):
        await asyncio.sleep(0)
    [entry] = store.command_log()
    assert (entry.outcome, entry.late_outcome) == ("PhoneTimeout", "ok")
    assert store.call("c@h").state == "held"
