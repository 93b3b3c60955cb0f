"""SharedPhoneLocks: one command per phone across processes, by fcntl byte-range locks.

Every test pits this process against another real one (a child Python process opening the same
lock file), since POSIX record locks never exclude two holders of one process. The child obeys
one command a line on stdin and answers one line on stdout; every read of it is bounded.
"""

import asyncio
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import sipbridge
from sipbridge.commands import shared_locks
from sipbridge.commands.shared_locks import SharedPhoneLocks, slot_of

TIMEOUT = 5.0  # any single answer of the child, its start and its exit

CHILD = """
import sys
from pathlib import Path

from sipbridge.commands import shared_locks

path, slots = sys.argv[1], int(sys.argv[2])
if slots:
    shared_locks._SLOTS = slots
locks = shared_locks.SharedPhoneLocks(Path(path))
print("ready", flush=True)
for line in sys.stdin:
    command, _, phone = line.strip().partition(" ")
    if command == "try":
        print("held" if locks.try_acquire(phone) else "busy", flush=True)
    elif command == "release":
        locks.release(phone)
        print("released", flush=True)
    elif command == "exit":  # without releasing: the kernel drops the locks at exit
        break
"""


class OtherProcess:
    """Another process with its own SharedPhoneLocks on the same file."""

    def __init__(self, path: Path, *, slots: int = 0) -> None:
        env = dict(os.environ)
        root = str(Path(sipbridge.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(slots)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self._buffer = b""
        assert self._line() == "ready"

    def _line(self) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + TIMEOUT
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError(f"no answer from the other process within {TIMEOUT} s")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise EOFError(f"the other process exited ({self.proc.poll()})")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def _ask(self, line: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{line}\n".encode())
        self.proc.stdin.flush()
        return self._line()

    def try_acquire(self, phone_id: str) -> bool:
        answer = self._ask(f"try {phone_id}")
        assert answer in ("held", "busy")
        return answer == "held"

    def release(self, phone_id: str) -> None:
        assert self._ask(f"release {phone_id}") == "released"

    def exit(self) -> None:
        """Ends without releasing anything."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"exit\n")
        self.proc.stdin.flush()
        assert self.proc.wait(TIMEOUT) == 0

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no chance to release anything
        assert self.proc.wait(TIMEOUT) == -9

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "phone-locks"  # the parent is created by SharedPhoneLocks


@pytest.fixture
def here(path) -> Iterator[SharedPhoneLocks]:
    locks = SharedPhoneLocks(path)
    yield locks
    locks.close()


@pytest.fixture
def other(path) -> Iterator[Callable[..., OtherProcess]]:
    started: list[OtherProcess] = []

    def start(*, slots: int = 0) -> OtherProcess:
        process = OtherProcess(path, slots=slots)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def test_a_phone_held_by_another_process_is_busy_here_and_only_that_phone(here, other):
    assert slot_of("1001") != slot_of("1002")
    them = other()
    assert them.try_acquire("1001")

    assert not here.try_acquire("1001")
    assert not here.try_acquire("1001")  # a refusal counts nothing
    assert here._held == {}
    assert here.try_acquire("1002")
    # ... and the other way round.
    assert not them.try_acquire("1002")


def test_a_phone_released_by_the_other_process_is_free_here(here, other):
    them = other()
    assert them.try_acquire("1001")
    assert not here.try_acquire("1001")

    them.release("1001")

    assert here.try_acquire("1001")
    assert not them.try_acquire("1001")


@pytest.mark.parametrize("end", [OtherProcess.kill, OtherProcess.exit], ids=["killed", "exited"])
def test_the_kernel_drops_the_locks_of_a_process_that_ends(here, other, end):
    them = other()
    assert them.try_acquire("1001")
    assert them.try_acquire("1002")
    assert not here.try_acquire("1001")

    end(them)

    assert here.try_acquire("1001")
    assert here.try_acquire("1002")


async def test_acquire_waits_while_the_other_process_holds_the_phone(here, other):
    them = other()
    assert them.try_acquire("1001")

    waiting = asyncio.create_task(here.acquire("1001"))
    await asyncio.sleep(0.3)  # many polls (the longest pause is 20 ms)
    assert not waiting.done()

    them.release("1001")
    released = time.monotonic()
    await asyncio.wait_for(waiting, TIMEOUT)
    assert time.monotonic() - released < 0.5

    assert not them.try_acquire("1001")  # now this process holds it


async def test_a_wait_given_up_leaves_nothing_held(here, other):
    them = other()
    assert them.try_acquire("1001")

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(here.acquire("1001"), 0.2)

    assert here._held == {}
    them.release("1001")
    # Nothing was taken here by the abandoned wait: the other process gets the phone back.
    assert them.try_acquire("1001")


def test_phones_sharing_a_slot_keep_it_until_the_last_one_is_released(here, other, monkeypatch):
    monkeypatch.setattr(shared_locks, "_SLOTS", 1)  # every phone in slot 0, in both processes
    assert slot_of("1001") == slot_of("1002") == slot_of("1003") == 0
    them = other(slots=1)

    assert here.try_acquire("1001")
    assert here.try_acquire("1002")  # the same byte, already this process's: counted
    assert here._held == {0: 2}
    assert not them.try_acquire("1003")

    here.release("1001")
    # One POSIX unlock would free the byte for "1002" too; the count keeps it locked.
    assert here._held == {0: 1}
    assert not them.try_acquire("1001")
    assert not them.try_acquire("1002")

    here.release("1002")
    assert here._held == {}
    assert them.try_acquire("1001")
    assert not here.try_acquire("1002")


def test_close_releases_every_phone(path, other):
    locks = SharedPhoneLocks(path)
    try:
        assert locks.try_acquire("1001")
        assert locks.try_acquire("1002")
        assert locks.try_acquire("1002")
        them = other()
        assert not them.try_acquire("1001")
        assert not them.try_acquire("1002")
    finally:
        locks.close()

    assert locks._held == {}
    assert them.try_acquire("1001")
    assert them.try_acquire("1002")
    # A new instance here starts from nothing and sees the other process's locks.
    again = SharedPhoneLocks(path)
    try:
        assert not again.try_acquire("1001")
        assert again.try_acquire("1003")
    finally:
        again.close()
