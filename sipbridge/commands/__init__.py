"""One command end to end: locate → plan (SIP or HTTP, chosen once) → the phone's lane → judge →
record. `CallControl` is the way in; the rest are its steps, each in its own module."""

from sipbridge.commands.actions import CALL_ACTIONS, ENDED, ActionBody, CallAction, DialBody
from sipbridge.commands.control import CallControl, CommandOptions, PbxCommand, Planned
from sipbridge.commands.journal import Completed, Journal
from sipbridge.commands.lanes import Lanes
from sipbridge.commands.outcome import CommandResult
from sipbridge.commands.plan import REQUESTED, Carrier, Planner, Requested
from sipbridge.commands.shared_locks import SharedPhoneLocks

__all__ = [
    "CALL_ACTIONS",
    "ENDED",
    "REQUESTED",
    "ActionBody",
    "CallAction",
    "CallControl",
    "Carrier",
    "CommandOptions",
    "CommandResult",
    "Completed",
    "DialBody",
    "Journal",
    "Lanes",
    "PbxCommand",
    "Planned",
    "Planner",
    "Requested",
    "SharedPhoneLocks",
]
