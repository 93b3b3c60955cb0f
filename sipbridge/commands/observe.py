"""What the command path tells those who count and watch it (KPIs, metrics, alarms: admin/).

The journal is where every command ends, from any entry, so it is the one caller: each ended
command once (with whether its log entry was written), and a late answer to a 504 once more.
Observers run on the event loop inside the command's own await: they must only count.
"""

from __future__ import annotations

from typing import Protocol

from sipbridge.tracker.models import CommandLogEntry


class CommandObserver(Protocol):
    def command_ended(self, entry: CommandLogEntry, *, written: bool) -> None:
        """`entry` is the command log entry; `written` is False when its write failed."""

    def late_outcome(self, entry: CommandLogEntry, outcome: str) -> None:
        """The transaction of `entry` (a 504 that had left) ended after all: `outcome` is
        "ok" or the error's class name, as in the log."""


class NoObserver:
    """Counts nothing (unit tests, and tools that run commands without a service)."""

    def command_ended(self, entry: CommandLogEntry, *, written: bool) -> None:
        pass

    def late_outcome(self, entry: CommandLogEntry, outcome: str) -> None:
        pass
