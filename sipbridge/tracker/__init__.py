"""The registration and call tracker: which phone is where, and which phone holds which call."""

from sipbridge.tracker.call_state import ENDED, state_after
from sipbridge.tracker.models import Call, CallState, LearnedFrom, Phone, Transport
from sipbridge.tracker.store import TrackerStore

__all__ = [
    "ENDED",
    "Call",
    "CallState",
    "LearnedFrom",
    "Phone",
    "TrackerStore",
    "Transport",
    "state_after",
]
