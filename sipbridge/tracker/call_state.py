"""How a call's tracked state follows a command the phone accepted — the whole table is here.

The phone is the authority: sipbridge never refuses a command because its own record says the call
is in another state (the record may lag the phone). It only updates the record once the phone has
answered 2xx. `ENDED` means the call leaves this phone, and the tracker forgets it.
"""

from __future__ import annotations

from typing import Final, Literal

from sipbridge.tracker.models import CallState

Ended = Literal["ended"]
ENDED: Final[Ended] = "ended"

# action -> state after the phone accepted it; None = the state does not change.
AFTER_ACTION: Final[dict[str, CallState | Ended | None]] = {
    "answer": "connected",
    "reject": ENDED,
    "ignore": ENDED,  # the phone stops alerting and drops the call from its list
    "end": ENDED,
    "hold": "held",
    "resume": "connected",
    "transfer": ENDED,
    "warm-transfer": ENDED,  # both A and B leave the phone (manual 002, WarmTransfer)
    "dtmf": None,
    "mute": None,
    "unmute": None,
    "join": "connected",  # a conference of the active and the held call
}


class UnknownAction(KeyError):
    """An action with no row in the table: a bug in the caller, not bad input."""


def state_after(action: str, current: CallState) -> CallState | Ended:
    """The call's state once the phone has carried out `action`."""
    try:
        after = AFTER_ACTION[action]
    except KeyError as exc:
        raise UnknownAction(action) from exc
    return current if after is None else after
