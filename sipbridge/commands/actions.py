"""The call actions of the front API, one row each: the Poly command an action becomes, the body
it takes, and the call's state once the phone has carried it out. Adding an action is one row.

The phone is the authority on a call: sipbridge changes its record only after the phone answered
2xx. An action whose `requires` names states is refused (409, with the tracked state) when the
tracked call is in none of them: holding a held call, resuming a connected one, answering one
that does not ring, as PBX phone-control APIs do. The record may lag the phone, so `?force=true`
sends anyway. `ENDED` means the call leaves the phone, and the tracker forgets it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from sipbridge.catalog import CallRef, Destination, Digits, LineNumber
from sipbridge.tracker import CallState

Ended = Literal["ended"]
ENDED: Final[Ended] = "ended"


class ActionBody(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NoBody(ActionBody):
    """Actions that need nothing but the Call-ID."""


class TransferBody(ActionBody):
    destination: Destination = Field(description="Number or SIP URI to transfer the call to.")


class WarmTransferBody(ActionBody):
    other_call_id: CallRef = Field(
        description="The held call on the same phone whose party receives this call."
    )


class DtmfBody(ActionBody):
    digits: Digits = Field(description="DTMF digits: 0-9, *, #, A-D.")


class DialBody(ActionBody):
    destination: Destination = Field(description="Number or SIP URI to call.")
    line: LineNumber | None = Field(None, description="Phone line to call from (default 1).")
    type: Literal["SIP", "TEL", "H323"] | None = Field(
        None, description="How the phone reads the destination (default TEL)."
    )


@dataclass(frozen=True, kw_only=True)
class CallAction:
    """An action of the front API, the Poly command it becomes, and what it does to the call."""

    name: str
    command: str
    body: type[ActionBody]
    data: Callable[[str, Any], dict[str, str]]
    # The call's state once the phone accepted the command; None: the state does not change.
    after: CallState | Ended | None
    summary: str
    # The tracked states the action makes sense in (the state guard); None: any.
    requires: frozenset[CallState] | None = None

    def state_after(self, current: CallState) -> CallState | Ended:
        return current if self.after is None else self.after


def _ref(call_id: str, _: Any) -> dict[str, str]:
    return {"Ref": call_id}


CALL_ACTIONS: Final[dict[str, CallAction]] = {
    action.name: action
    for action in (
        CallAction(
            name="answer",
            command="answerCall",
            body=NoBody,
            data=_ref,
            after="connected",
            summary="Answer the ringing call.",
            requires=frozenset({"ringing"}),
        ),
        CallAction(
            name="reject",
            command="rejectCall",
            body=NoBody,
            data=_ref,
            after=ENDED,
            summary="Reject the ringing call.",
            requires=frozenset({"ringing"}),
        ),
        CallAction(
            name="ignore",
            command="ignoreCall",
            body=NoBody,
            data=_ref,
            after=ENDED,  # the phone stops alerting and drops the call from its list
            summary="Stop the phone ringing for the call.",
            requires=frozenset({"ringing"}),
        ),
        CallAction(
            name="end",
            command="endCall",
            body=NoBody,
            data=_ref,
            after=ENDED,
            summary="Hang up the call.",
        ),
        CallAction(
            name="hold",
            command="holdCall",
            body=NoBody,
            data=_ref,
            after="held",
            summary="Put the call on hold.",
            requires=frozenset({"connected"}),
        ),
        CallAction(
            name="resume",
            command="resumeCall",
            body=NoBody,
            data=_ref,
            after="connected",
            summary="Resume the held call.",
            requires=frozenset({"held"}),
        ),
        CallAction(
            name="transfer",
            command="transferCall",
            body=TransferBody,
            data=lambda call_id, body: {"Ref": call_id, "TransferDest": body.destination},
            after=ENDED,
            summary="Blind-transfer the call.",
        ),
        CallAction(
            name="warm-transfer",
            command="warmTransfer",
            body=WarmTransferBody,
            data=lambda call_id, body: {"Ref-A": call_id, "Ref-B": body.other_call_id},
            after=ENDED,  # both A and B leave the phone (manual 002, WarmTransfer)
            summary="Attended transfer: connect this call to the party of other_call_id.",
        ),
        CallAction(
            name="dtmf",
            command="sendDTMF",
            body=DtmfBody,
            data=lambda _, body: {"Digits": body.digits},
            after=None,
            summary="Send DTMF digits on the phone's active call.",
        ),
        CallAction(
            name="mute",
            command="mute",
            body=NoBody,
            data=lambda _, __: {"state": "1"},
            after=None,
            summary="Mute the phone.",
        ),
        CallAction(
            name="unmute",
            command="mute",
            body=NoBody,
            data=lambda _, __: {"state": "0"},
            after=None,
            summary="Unmute the phone.",
        ),
        CallAction(
            name="join",
            command="joinCalls",
            body=NoBody,
            data=lambda _, __: {},
            after="connected",  # a conference of the active and the held call
            summary="Join the phone's active and held calls into a conference.",
        ),
    )
}
