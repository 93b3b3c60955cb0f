import pytest

from sipbridge.errors import UnknownCall, UnknownPhone
from sipbridge.tracker import TrackerStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    store = TrackerStore(tmp_path / "t.sqlite3", clock=clock)
    yield store
    store.close()


def register(store, phone_id="1001", expires=60):
    return store.register_phone(
        phone_id,
        contact=f"sip:{phone_id}@10.0.0.5:5060",
        transport="udp",
        expires=expires,
        aor=f"sip:{phone_id}@pbx",
        user_agent="PolyEdge-E450-UA/8.3.0",
    )


def test_registration_resolves_until_it_expires(store, clock):
    phone = register(store, expires=60)
    assert phone.registered_until == clock.now + 60
    clock.now += 59
    assert store.phone("1001").contact == "sip:1001@10.0.0.5:5060"
    clock.now += 1
    with pytest.raises(UnknownPhone):
        store.phone("1001")
    assert store.phones() == []


def test_call_on_an_expired_phone_does_not_resolve(store, clock):
    register(store, expires=10)
    store.record_call("c1@h", phone_id="1001", state="connected")
    clock.now += 11
    with pytest.raises(UnknownPhone, match="not registered"):
        store.locate("c1@h")


def test_recording_a_call_needs_a_registered_phone(store):
    with pytest.raises(UnknownPhone):
        store.record_call("c1@h", phone_id="9999", state="connected")
    with pytest.raises(UnknownCall):
        store.call("c1@h")


def test_repeat_keeps_first_seen_and_moves_the_call(store, clock):
    register(store, "1001")
    register(store, "1002")
    first = store.record_call("c1@h", phone_id="1001", state="ringing")
    clock.now += 5
    again = store.record_call("c1@h", phone_id="1002", state="connected")
    assert again.first_seen == first.first_seen
    assert (again.phone_id, again.state, again.updated_at) == ("1002", "connected", clock.now)


def test_removing_a_phone_forgets_its_calls(store):
    register(store)
    store.record_call("c1@h", phone_id="1001", state="held")
    assert store.remove_phone("1001")
    with pytest.raises(UnknownCall):
        store.call("c1@h")
    assert not store.remove_phone("1001")


def test_everything_survives_a_restart(tmp_path, clock):
    path = tmp_path / "t.sqlite3"
    first = TrackerStore(path, clock=clock)
    register(first)
    first.record_call("c1@h", phone_id="1001", state="held")
    first.close()
    second = TrackerStore(path, clock=clock)
    call, phone = second.locate("c1@h")
    assert (call.state, phone.user_agent) == ("held", "PolyEdge-E450-UA/8.3.0")
    second.close()


def test_calls_filter_by_phone(store):
    register(store, "1001")
    register(store, "1002")
    store.record_call("a@h", phone_id="1001", state="connected")
    store.record_call("b@h", phone_id="1002", state="connected")
    assert [c.call_id for c in store.calls(phone_id="1002")] == ["b@h"]
    assert len(store.calls()) == 2


def test_a_database_from_the_first_schema_is_migrated(tmp_path, clock):
    import sqlite3

    from sipbridge.tracker.store import _MIGRATIONS

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(_MIGRATIONS[0] + "PRAGMA user_version = 1;")
    db.execute(
        "INSERT INTO phones VALUES ('1001', 'sip:1001@pbx', 'sip:1001@h', 'udp', NULL, ?, 0)",
        (clock.now + 60,),
    )
    db.commit()
    db.close()
    store = TrackerStore(path, clock=clock)
    phone = store.phone("1001")
    assert (phone.learned_from, phone.profile) == ("http", None)
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == len(_MIGRATIONS)
    store.close()


def test_the_command_log_loses_autoincrement_but_keeps_its_ids(tmp_path, clock):
    import sqlite3

    from sipbridge.tracker.models import CommandLogEntry
    from sipbridge.tracker.store import _MIGRATIONS

    path = tmp_path / "v4.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("".join(_MIGRATIONS[:4]) + "PRAGMA user_version = 4;")
    for n in range(1, 6):
        db.execute(
            "INSERT INTO commands (at, source, outcome, reason, status, latency_ms) "
            "VALUES (?, 'http:127.0.0.1', 'ok', ?, 200, 1.5)",
            (float(n), f"r{n}"),
        )
    db.execute("DELETE FROM commands WHERE id < 3")  # pruned before the upgrade
    db.commit()
    db.close()

    store = TrackerStore(path, clock=clock)
    sql = store._db.execute("SELECT sql FROM sqlite_master WHERE name = 'commands'").fetchone()[0]
    assert "AUTOINCREMENT" not in sql.upper()
    kept = store.command_log(limit=10)
    assert [(e.id, e.reason, e.status, e.latency_ms) for e in kept] == [
        (5, "r5", 200, 1.5),
        (4, "r4", 200, 1.5),
        (3, "r3", 200, 1.5),
    ]
    store.log_command(CommandLogEntry(source="http:127.0.0.1", outcome="ok", reason="r6"))
    assert store.command_log(limit=1)[0].id == 6  # after the largest id, as before
    store.close()


def test_phones_and_calls_are_rebuilt_without_rowid_keeping_every_row(tmp_path, clock):
    import sqlite3

    from sipbridge.tracker.store import _MIGRATIONS

    path = tmp_path / "v5.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA foreign_keys=ON")
    db.executescript("".join(_MIGRATIONS[:5]) + "PRAGMA user_version = 5;")
    for n, (profile, cseq) in enumerate([("vvx-ucs6", 7), (None, None)], start=1):
        db.execute(
            "INSERT INTO phones (id, aor, contact, transport, user_agent, registered_until, "
            "updated_at, learned_from, received, registration_call_id, registration_cseq, "
            "profile) VALUES (?, ?, ?, 'tcp', 'UA', ?, 5.0, 'register', '10.0.0.5:4000', "
            "'reg@h', ?, ?)",
            (f"100{n}", f"sip:100{n}@pbx", f"sip:100{n}@10.0.0.5", clock.now + 60, cseq, profile),
        )
    for n in range(1, 5):
        db.execute(
            "INSERT INTO calls VALUES (?, ?, 'held', 1.0, 2.0)", (f"c{n}@h", f"100{1 + n % 2}")
        )
    db.commit()
    db.close()

    store = TrackerStore(path, clock=clock)
    schema = dict(store._db.execute("SELECT name, sql FROM sqlite_master").fetchall())
    assert "WITHOUT ROWID" in schema["phones"] and "WITHOUT ROWID" in schema["calls"]
    assert "calls_by_phone" in schema
    assert not any(name.endswith("_v6") for name in schema)
    pinned = store.phone("1001")
    assert (pinned.transport, pinned.learned_from, pinned.received) == (
        "tcp",
        "register",
        "10.0.0.5:4000",
    )
    assert (pinned.registration_cseq, pinned.profile) == (7, "vvx-ucs6")
    assert [c.call_id for c in store.calls(phone_id="1002")] == ["c1@h", "c3@h"]
    call, phone = store.locate("c2@h")
    assert (call.state, call.first_seen, call.updated_at, phone.id) == ("held", 1.0, 2.0, "1001")
    # The foreign key still holds in the rebuilt tables: a phone's calls go with it.
    assert store.remove_phone("1002")
    assert [c.call_id for c in store.calls()] == ["c2@h", "c4@h"]
    with pytest.raises(UnknownPhone):
        store.record_call("c9@h", phone_id="1002", state="ringing")
    store.close()


def test_a_migration_that_would_leave_orphan_calls_is_refused(tmp_path, clock):
    import sqlite3

    from sipbridge.errors import StoreError
    from sipbridge.tracker.store import _MIGRATIONS

    path = tmp_path / "v5.sqlite3"
    db = sqlite3.connect(path)  # foreign keys off, as an old or hand-edited file may have had
    db.executescript("".join(_MIGRATIONS[:5]) + "PRAGMA user_version = 5;")
    db.execute("INSERT INTO calls VALUES ('c1@h', 'gone', 'held', 1.0, 2.0)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match=r"migration 6 refused: .* calls on phones it does not"):
        TrackerStore(path, clock=clock)
    db = sqlite3.connect(path)  # left as it was
    assert db.execute("PRAGMA user_version").fetchone()[0] == 5
    assert "WITHOUT ROWID" not in db.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'calls'"
    ).fetchone()[0]
    db.close()


def test_rows_become_phones_and_calls_field_by_field(store, clock):
    # _phone and _call read columns by position: the SELECT lists and the readers must agree.
    phone = store.register_phone(
        "1001",
        contact="sip:1001@10.0.0.5:5062;transport=tcp",
        transport="tcp",
        expires=60,
        aor="sip:1001@pbx",
        user_agent="PolycomVVX-VVX_450-UA/6.4.3",
        learned_from="register",
        received="10.0.0.5:40000",
        registration_call_id="reg-1@h",
        registration_cseq=7,
        profile="vvx-ucs6",
    )
    expected = {
        "id": "1001",
        "aor": "sip:1001@pbx",
        "contact": "sip:1001@10.0.0.5:5062;transport=tcp",
        "transport": "tcp",
        "user_agent": "PolycomVVX-VVX_450-UA/6.4.3",
        "registered_until": clock.now + 60,
        "updated_at": clock.now,
        "learned_from": "register",
        "received": "10.0.0.5:40000",
        "registration_call_id": "reg-1@h",
        "registration_cseq": 7,
        "profile": "vvx-ucs6",
    }
    clock.now += 1  # first_seen and updated_at of the call differ from the phone's times
    store.record_call("c1@h", phone_id="1001", state="ringing")
    clock.now += 1
    store.set_call_state("c1@h", "held")
    call, located = store.locate("c1@h")
    for found in (phone, store.phone("1001"), located):
        assert vars(found) == expected
    assert vars(call) == {
        "call_id": "c1@h",
        "phone_id": "1001",
        "state": "held",
        "first_seen": clock.now - 1,
        "updated_at": clock.now,
    }
    assert vars(store.call("c1@h")) == vars(call)


def test_purge_forgets_expired_phones_and_their_calls(store, clock):
    register(store, "1001", expires=10)
    register(store, "1002", expires=100)
    store.record_call("c1@h", phone_id="1001", state="connected")
    clock.now += 11
    assert store.purge_expired() == ["1001"]
    with pytest.raises(UnknownCall):
        store.call("c1@h")
    assert [p.id for p in store.phones()] == ["1002"]


def test_command_log_pages_newest_first(store):
    from sipbridge.tracker.models import CommandLogEntry

    for n in range(5):
        store.log_command(CommandLogEntry(source="http:127.0.0.1", outcome="ok", reason=f"r{n}"))
    first = store.command_log(limit=2)
    assert [e.reason for e in first] == ["r4", "r3"]
    second = store.command_log(limit=2, before=first[-1].id)
    assert [e.reason for e in second] == ["r2", "r1"]


def test_a_refresh_keeps_the_pinned_profile_unless_told_otherwise(store):
    store.register_phone(
        "1001",
        contact="sip:1001@h",
        transport="udp",
        expires=60,
        aor="sip:1001@h",
        profile="vvx-ucs6",
    )
    register(store, "1001")  # a refresh that says nothing about the pin
    assert store.phone("1001").profile == "vvx-ucs6"
    store.register_phone(
        "1001", contact="sip:1001@h", transport="udp", expires=60, aor="sip:1001@h", profile=None
    )
    assert store.phone("1001").profile is None


def test_pruning_keeps_the_newest_entries_a_bounded_batch_at_a_time(store):
    from sipbridge.tracker.models import CommandLogEntry

    with store.transaction():
        for n in range(1, 26):
            store.log_command(
                CommandLogEntry(source="http:127.0.0.1", outcome="ok", reason=f"r{n}")
            )
    assert store.prune_command_log(30) == 0  # under the limit: nothing goes
    # 25 entries, keep 10: 15 must go, but at most 6 per call.
    assert store.prune_command_log(10, at_most=6) == 6
    assert store.prune_command_log(10, at_most=6) == 6
    assert store.prune_command_log(10, at_most=6) == 3
    assert store.prune_command_log(10, at_most=6) == 0
    kept = store.command_log(limit=100)
    assert [e.reason for e in kept] == [f"r{n}" for n in range(25, 15, -1)]
    # New entries keep counting up after a prune: paging by id stays valid.
    store.log_command(CommandLogEntry(source="http:127.0.0.1", outcome="ok", reason="r26"))
    assert store.command_log(limit=1)[0].id == 26


def test_pruning_an_empty_log_does_nothing(store):
    assert store.prune_command_log(1000) == 0


def test_locating_an_unknown_call_says_so(store):
    register(store)
    with pytest.raises(UnknownCall, match="no tracked call"):
        store.locate("nobody@h")


def test_migration_7_keeps_old_entries_and_a_late_outcome_lands_on_its_entry(tmp_path, clock):
    import sqlite3

    from sipbridge.tracker.models import CommandLogEntry
    from sipbridge.tracker.store import _MIGRATIONS

    path = tmp_path / "v6.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("".join(_MIGRATIONS[:6]) + "PRAGMA user_version = 6;")
    db.execute(
        "INSERT INTO commands (at, source, outcome, reason) VALUES (1.0, 'http:x', 'ok', 'OK')"
    )
    db.commit()
    db.close()

    store = TrackerStore(path, clock=clock)
    [old] = store.command_log()
    assert (old.outcome, old.sent, old.late_outcome) == ("ok", None, None)
    entry_id = store.log_command(
        CommandLogEntry(source="http:y", outcome="PhoneTimeout", reason="no answer", sent=True)
    )
    store.record_late_outcome(entry_id, outcome="ok", status=200, reason="OK", latency_ms=2800.0)
    newest, _ = store.command_log()
    assert newest.id == entry_id
    assert (newest.sent, newest.late_outcome, newest.late_status) == (True, "ok", 200)
    assert (newest.late_reason, newest.late_latency_ms) == ("OK", 2800.0)
    store.close()


def test_the_database_and_its_directory_are_private(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        store = TrackerStore(tmp_path / "data" / "t.sqlite3")
        store.register_phone(
            "1001", contact="sip:1001@10.0.0.5", transport="udp", aor="sip:1001@h", expires=60
        )
        modes = {
            p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "data").iterdir()
        }
        store.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert modes["t.sqlite3"] == 0o600
    assert modes.get("t.sqlite3-wal", 0o600) == 0o600 and modes.get("t.sqlite3-shm", 0o600) == 0o600
    assert "t.sqlite3-wal" in modes


def test_an_existing_database_open_to_others_is_made_private(tmp_path):
    import stat

    TrackerStore(tmp_path / "t.sqlite3").close()
    (tmp_path / "t.sqlite3").chmod(0o644)
    TrackerStore(tmp_path / "t.sqlite3").close()
    assert stat.S_IMODE((tmp_path / "t.sqlite3").stat().st_mode) == 0o600
