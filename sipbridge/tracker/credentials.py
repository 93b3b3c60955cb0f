"""Device-API users and front-API keys, kept in the tracker database (hashes only).

Passwords are people's: argon2id (argon2-cffi, RFC 9106), verified off the event loop by the
caller (admin/auth.py), since one check costs tens of milliseconds by design. Keys are made by
sipbridge (`secrets.token_urlsafe(32)`, 256 bits): guessing one is hopeless, so a fast SHA-256
digest stores them as safely and lets every request be checked in microseconds; the compare is
constant-time (`hmac.compare_digest`) all the same.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from sipbridge.errors import Conflict, InvalidInput, NotFound
from sipbridge.levels import Level
from sipbridge.tracker.store import TrackerStore

MIN_PASSWORD_LENGTH = 12
NAME_PATTERN = "letters, digits and . _ - (1 to 64)"
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


@dataclass(frozen=True)
class User:
    name: str
    level: Level
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class ApiKey:
    name: str
    level: Level
    created_at: float


def check_name(name: str, what: str = "name") -> str:
    if not 1 <= len(name) <= 64 or not set(name) <= _NAME_CHARS:
        raise InvalidInput.one(what, f"{name!r} is not a valid {what}: {NAME_PATTERN}")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput.one(
            "password", f"a password has at least {MIN_PASSWORD_LENGTH} characters"
        )
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in password):
        raise InvalidInput.one("password", "a password has no control characters")
    return password


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


class Credentials:
    """Users and keys in `store` (tables `users` and `api_keys`, migration 8)."""

    def __init__(self, store: TrackerStore, *, hasher: PasswordHasher | None = None) -> None:
        self._store = store
        self._hasher = hasher or PasswordHasher()  # argon2id, the library's RFC 9106 defaults
        self._dummy: str | None = None

    # -- users ---------------------------------------------------------------------------------

    def add_user(self, name: str, level: Level, password: str) -> User:
        check_name(name)
        digest = self._hasher.hash(check_password(password))
        now = self._store.now()
        if self._store.execute("SELECT 1 FROM users WHERE name = ?", (name,)):
            raise Conflict(f"user {name!r} exists: use 'users passwd' or 'users set-level'")
        self._store.execute(
            "INSERT INTO users (name, level, password_hash, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (name, level.cli_name, digest, now, now),
        )
        return User(name, level, now, now)

    def users(self) -> list[User]:
        rows = self._store.execute(
            "SELECT name, level, created_at, updated_at FROM users ORDER BY name"
        )
        return [User(r[0], Level.parse(r[1]), r[2], r[3]) for r in rows]

    def user_count(self) -> int:
        return int(self._store.execute("SELECT count(*) FROM users")[0][0])

    def remove_user(self, name: str) -> None:
        if not self._store.execute("DELETE FROM users WHERE name = ? RETURNING name", (name,)):
            raise NotFound(f"no user {name!r}")

    def set_password(self, name: str, password: str) -> None:
        digest = self._hasher.hash(check_password(password))
        rows = self._store.execute(
            "UPDATE users SET password_hash = ?, updated_at = ? WHERE name = ? RETURNING name",
            (digest, self._store.now(), name),
        )
        if not rows:
            raise NotFound(f"no user {name!r}")

    def set_level(self, name: str, level: Level) -> None:
        rows = self._store.execute(
            "UPDATE users SET level = ?, updated_at = ? WHERE name = ? RETURNING name",
            (level.cli_name, self._store.now(), name),
        )
        if not rows:
            raise NotFound(f"no user {name!r}")

    def password_record(self, name: str) -> tuple[str, Level, float] | None:
        """The stored hash, level and last change of `name` (for `verify_password`)."""
        rows = self._store.execute(
            "SELECT password_hash, level, updated_at FROM users WHERE name = ?", (name,)
        )
        if not rows:
            return None
        return rows[0][0], Level.parse(rows[0][1]), rows[0][2]

    def verify_nobody(self) -> None:
        """As long as a real check, for a name that does not exist (timing tells nothing)."""
        if self._dummy is None:
            self._dummy = self._hasher.hash(secrets.token_hex(16))
        self.verify_password(self._dummy, "not the password")

    def verify_password(self, stored_hash: str, password: str) -> bool:
        """Slow by design (argon2id): call it off the event loop."""
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    # -- keys ----------------------------------------------------------------------------------

    def add_key(self, name: str, level: Level) -> str:
        """A new key for `name`, returned once; only its digest is kept."""
        check_name(name)
        if self._store.execute("SELECT 1 FROM api_keys WHERE name = ?", (name,)):
            raise Conflict(f"key {name!r} exists: remove it first")
        key = secrets.token_urlsafe(32)
        self._store.execute(
            "INSERT INTO api_keys (name, level, key_hash, created_at) VALUES (?, ?, ?, ?)",
            (name, level.cli_name, key_digest(key), self._store.now()),
        )
        return key

    def api_keys(self) -> list[ApiKey]:
        rows = self._store.execute("SELECT name, level, created_at FROM api_keys ORDER BY name")
        return [ApiKey(r[0], Level.parse(r[1]), r[2]) for r in rows]

    def remove_key(self, name: str) -> None:
        if not self._store.execute("DELETE FROM api_keys WHERE name = ? RETURNING name", (name,)):
            raise NotFound(f"no key {name!r}")

    def key_digests(self) -> dict[str, tuple[str, Level]]:
        """digest -> (name, level) of every stored key."""
        rows = self._store.execute("SELECT key_hash, name, level FROM api_keys")
        return {r[0]: (r[1], Level.parse(r[2])) for r in rows}


def find_key(presented: str, digests: dict[str, tuple[str, Level]]) -> tuple[str, Level] | None:
    """The stored key `presented` is, compared in constant time against every digest."""
    candidate = key_digest(presented).encode()
    found: tuple[str, Level] | None = None
    for digest, owner in digests.items():
        if hmac.compare_digest(candidate, digest.encode()):
            found = owner
    return found
