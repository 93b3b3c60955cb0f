"""One observer of the command path that hands each event to those who count it: the KPIs,
the Prometheus metrics and the alarm rules (each its own module). A fault in one of them is
logged and never reaches the command."""

from __future__ import annotations

import logging

from sipbridge.commands.observe import CommandObserver
from sipbridge.tracker.models import CommandLogEntry

log = logging.getLogger(__name__)


class Telemetry:
    def __init__(self, *observers: CommandObserver) -> None:
        self._observers = observers

    def command_ended(self, entry: CommandLogEntry, *, written: bool) -> None:
        for observer in self._observers:
            try:
                observer.command_ended(entry, written=written)
            except Exception:
                log.exception("%s failed to count a command", type(observer).__name__)

    def late_outcome(self, entry: CommandLogEntry, outcome: str) -> None:
        for observer in self._observers:
            try:
                observer.late_outcome(entry, outcome)
            except Exception:
                log.exception("%s failed to count a late outcome", type(observer).__name__)
