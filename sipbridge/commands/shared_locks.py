"""One command in flight per phone across worker processes (`sipbridge serve --workers N`).

Inside a process the lanes (lanes.py) keep a phone's commands apart; between processes a
byte-range lock on a shared file does (fcntl(2), POSIX record locks). A phone maps to one byte
of a sparse range by a hash of its id. The kernel drops a process's locks when it exits, so a
crashed worker never leaves a phone locked.

POSIX locks belong to the process, not to a caller: two phones of one process that hash to the
same byte would release each other's lock. A reference count per byte keeps the lock until the
last holder in this process lets go (a collision then only serializes two phones, never lets
two commands through).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
from pathlib import Path

# 2**40 bytes of address space for 2**40 slots: a collision among a million phones is unlikely,
# and harmless (see above).
_SLOTS = 2**40
_FIRST_WAIT, _LONGEST_WAIT = 0.0005, 0.02


def slot_of(phone_id: str) -> int:
    digest = hashlib.blake2b(phone_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % _SLOTS


class SharedPhoneLocks:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._held: dict[int, int] = {}  # slot -> holders in this process

    def try_acquire(self, phone_id: str) -> bool:
        """Take the phone's lock if no other process holds it; never blocks."""
        if self._fd < 0:
            raise RuntimeError("the phone locks are closed")
        slot = slot_of(phone_id)
        held = self._held.get(slot, 0)
        if held == 0:
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
            except (BlockingIOError, PermissionError):  # EAGAIN, or EACCES on some systems
                return False
        self._held[slot] = held + 1
        return True

    async def acquire(self, phone_id: str) -> None:
        """Wait until the phone is free in every process (the caller bounds the wait).

        Polls with a growing pause: a command holds a phone for a round trip (about a
        millisecond), and contention across workers needs two clients on one phone at once.
        """
        wait = _FIRST_WAIT
        while not self.try_acquire(phone_id):
            await asyncio.sleep(wait)
            wait = min(wait * 2, _LONGEST_WAIT)

    def release(self, phone_id: str) -> None:
        if self._fd < 0:  # closed at shutdown while a command was still finishing
            return
        slot = slot_of(phone_id)
        held = self._held.get(slot, 0)
        if held <= 1:
            self._held.pop(slot, None)
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, slot)
        else:
            self._held[slot] = held - 1

    def close(self) -> None:
        """Release every lock this process holds on the file; later calls do nothing."""
        fd, self._fd = self._fd, -1
        self._held.clear()
        if fd >= 0:
            os.close(fd)
