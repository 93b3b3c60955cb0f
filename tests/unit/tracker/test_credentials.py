"""Users (argon2id) and keys (SHA-256 digests) in a real SQLite file: nothing in clear."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from sipbridge.errors import Conflict, InvalidInput, NotFound
from sipbridge.levels import Level
from sipbridge.tracker import TrackerStore
from sipbridge.tracker.credentials import Credentials, find_key, key_digest

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # argon2id, cheap for tests


@pytest.fixture
def store(tmp_path):
    store = TrackerStore(tmp_path / "t.sqlite3")
    yield store
    store.close()


@pytest.fixture
def credentials(store):
    return Credentials(store, hasher=FAST)


def test_passwords_are_stored_as_argon2id_and_verify(credentials, store, tmp_path):
    credentials.add_user("alice", Level.ADMINISTRATOR, "correct horse battery")
    stored, level, _ = credentials.password_record("alice")
    assert stored.startswith("$argon2id$") and level is Level.ADMINISTRATOR
    assert credentials.verify_password(stored, "correct horse battery")
    assert not credentials.verify_password(stored, "correct horse batterx")
    assert not credentials.verify_password("not-a-hash", "correct horse battery")
    assert b"correct horse" not in (tmp_path / "t.sqlite3").read_bytes()


def test_bad_names_and_short_passwords_are_refused(credentials):
    with pytest.raises(InvalidInput, match="at least 12"):
        credentials.add_user("alice", Level.MONITOR, "short")
    with pytest.raises(InvalidInput, match="control characters"):
        credentials.add_user("alice", Level.MONITOR, "long enough\x00but not")
    for name in ("", "a b", "x" * 65, "ünï", "a:b"):
        with pytest.raises(InvalidInput):
            credentials.add_user(name, Level.MONITOR, "long enough password")
    assert credentials.user_count() == 0


def test_users_change_and_go(credentials):
    credentials.add_user("alice", Level.MONITOR, "first password 1")
    with pytest.raises(Conflict):
        credentials.add_user("alice", Level.MONITOR, "first password 1")
    before = credentials.password_record("alice")
    credentials.set_password("alice", "second password 2")
    after = credentials.password_record("alice")
    assert before is not None and after is not None and before[0] != after[0]
    credentials.set_level("alice", Level.SECURITY_ADMINISTRATOR)
    assert [(u.name, u.level) for u in credentials.users()] == [
        ("alice", Level.SECURITY_ADMINISTRATOR)
    ]
    credentials.remove_user("alice")
    assert credentials.password_record("alice") is None
    for change in (
        lambda: credentials.remove_user("alice"),
        lambda: credentials.set_password("alice", "third password 3"),
        lambda: credentials.set_level("alice", Level.MONITOR),
    ):
        with pytest.raises(NotFound):
            change()


def test_keys_are_kept_as_digests_and_found_by_them(credentials, tmp_path):
    key = credentials.add_key("crm", Level.MONITOR)
    assert len(key) >= 43
    digests = credentials.key_digests()
    assert digests == {key_digest(key): ("crm", Level.MONITOR)}
    assert key.encode() not in (tmp_path / "t.sqlite3").read_bytes()
    assert find_key(key, digests) == ("crm", Level.MONITOR)
    assert find_key(key[:-1] + ("A" if key[-1] != "A" else "B"), digests) is None
    assert find_key("\udcff", digests) is None  # undecodable header bytes only mismatch
    with pytest.raises(Conflict):
        credentials.add_key("crm", Level.ADMINISTRATOR)
    credentials.remove_key("crm")
    assert credentials.key_digests() == {}
    with pytest.raises(NotFound):
        credentials.remove_key("crm")


def test_users_and_keys_survive_a_restart(tmp_path):
    store = TrackerStore(tmp_path / "t.sqlite3")
    credentials = Credentials(store, hasher=FAST)
    credentials.add_user("alice", Level.MONITOR, "first password 1")
    key = credentials.add_key("crm", Level.ADMINISTRATOR)
    store.close()
    store = TrackerStore(tmp_path / "t.sqlite3")
    credentials = Credentials(store, hasher=FAST)
    record = credentials.password_record("alice")
    assert record is not None and credentials.verify_password(record[0], "first password 1")
    assert find_key(key, credentials.key_digests()) == ("crm", Level.ADMINISTRATOR)
    store.close()
