"""Identities: front-API keys (settings and `keys add`) and device-API users (`users add`).

A user's password is checked with argon2id in a worker thread (tens of milliseconds, never on
the loop); a success is remembered (bounded) for that user's current hash and that password, so
a client sending Basic on every request pays once, and `users passwd` or `users remove` takes
effect on the next request. Stored keys are re-read at most every `KEY_CACHE_SECONDS`, so
`keys add` / `keys remove` reach a running service (every worker) within that time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from sipbridge.levels import Level
from sipbridge.tracker.credentials import Credentials, find_key

KEY_CACHE_SECONDS = 2.0
_VERIFIED_CACHE = 1024


def key_matches(presented: str, accepted: frozenset[str]) -> bool:
    """Compare against every key in constant time, so timing reveals neither key nor match.
    aiohttp hands undecodable header bytes over as surrogates: keep them, so they only
    mismatch."""
    candidate = presented.encode("utf-8", "surrogateescape")
    found = False
    for key in accepted:
        found |= hmac.compare_digest(candidate, key.encode())
    return found


class KeyRing:
    """Front-API keys: those in the settings (Administrator) and those made with `keys add`
    (their own level, stored as digests)."""

    def __init__(
        self,
        configured: frozenset[str],
        credentials: Credentials,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._configured = configured
        self._credentials = credentials
        self._clock = clock
        self._digests: dict[str, tuple[str, Level]] = {}
        self._read_at = -KEY_CACHE_SECONDS

    def level_of(self, presented: str) -> Level | None:
        configured = key_matches(presented, self._configured)
        if self._clock() - self._read_at >= KEY_CACHE_SECONDS:
            self._digests = self._credentials.key_digests()
            self._read_at = self._clock()
        stored = find_key(presented, self._digests)
        if stored is not None:
            return stored[1]
        return Level.ADMINISTRATOR if configured else None


@dataclass(frozen=True)
class BasicCredentials:
    user: str
    password: str


def parse_basic(header: str) -> BasicCredentials | None:
    """RFC 7617 credentials, or None when the header is not Basic or is malformed."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, colon, password = decoded.partition(":")
    if not colon or not user:
        return None
    return BasicCredentials(user, password)


class UserGate:
    """Device-API users by HTTP Basic: the level of a user whose password checks out."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self._verified: OrderedDict[tuple[str, str, str], None] = OrderedDict()

    def has_users(self) -> bool:
        return self._credentials.user_count() > 0

    async def level_of(self, given: BasicCredentials) -> Level | None:
        record = self._credentials.password_record(given.user)
        if record is None:
            # Spend the same time as a real check, so timing does not tell which names exist.
            await asyncio.to_thread(self._credentials.verify_nobody)
            return None
        stored_hash, level, _ = record
        proof = hashlib.sha256(given.password.encode("utf-8", "surrogateescape")).hexdigest()
        key = (given.user, stored_hash, proof)
        if key in self._verified:
            self._verified.move_to_end(key)
            return level
        ok = await asyncio.to_thread(self._credentials.verify_password, stored_hash, given.password)
        if not ok:
            return None
        self._verified[key] = None
        if len(self._verified) > _VERIFIED_CACHE:
            self._verified.popitem(last=False)
        return level
