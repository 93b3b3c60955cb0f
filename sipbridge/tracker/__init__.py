"""The registration and call tracker: which phone is where, and which phone holds which call."""

from sipbridge.tracker.models import Call, CallState, LearnedFrom, Phone, SipTransport
from sipbridge.tracker.store import TrackerStore

__all__ = [
    "Call",
    "CallState",
    "LearnedFrom",
    "Phone",
    "SipTransport",
    "TrackerStore",
]
