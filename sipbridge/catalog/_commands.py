"""The call-control commands of the Poly REST API (manual 002, WebCallControl.*).

Each command is a `CommandSpec`: its command-URI, the pydantic model its `data` must satisfy, and
whether it can only travel inside a SIP NOTIFY. Pure data; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sipbridge.catalog._fields import CallRef, Destination, Digits, LineNumber


class CommandData(BaseModel):
    """Base of every command's `data`: frozen, unknown fields refused, Poly's names on the wire."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class OptionalRef(CommandData):
    # Manual 002: Ref is "optional" for answer/reject/ignore/hold (the phone then acts on its
    # active call); sipbridge always sends one when it acts by Call-ID.
    ref: CallRef | None = Field(None, alias="Ref")


class RequiredRef(CommandData):
    ref: CallRef = Field(alias="Ref")


class TransferData(CommandData):
    ref: CallRef = Field(alias="Ref")
    transfer_dest: Destination = Field(alias="TransferDest")


class WarmTransferData(CommandData):
    ref_a: CallRef = Field(alias="Ref-A", description="The call that is sent the REFER.")
    ref_b: CallRef = Field(alias="Ref-B", description="The call joined with A.")


class DtmfData(CommandData):
    digits: Digits = Field(alias="Digits")


class MuteData(CommandData):
    state: Literal["0", "1"] = Field(alias="state")


class JoinData(CommandData):
    """Manual 002 gives joinCalls no input fields: it joins the active call with the held one."""


class DialData(CommandData):
    dest: Destination = Field(alias="Dest")
    line: LineNumber | None = Field(None, alias="Line", description="Defaults to line 1.")
    type: Literal["SIP", "TEL", "H323"] | None = Field(
        None, alias="Type", description="Defaults to TEL."
    )


@dataclass(frozen=True, kw_only=True)
class CommandSpec:
    """One Poly REST command as the catalog knows it."""

    name: str
    command_uri: str
    data_model: type[CommandData]
    summary: str
    sip_only: bool = False
    http_method: Literal["GET", "POST"] = "POST"
    firmware: str = "UCS 5.x+ over HTTP; UCS 6.4.2+ / PVOS 8.0+ over SIP"


_CALLCTRL = "/api/v1/callctrl/"

CALL_CONTROL: tuple[CommandSpec, ...] = (
    CommandSpec(
        name="answerCall",
        command_uri=_CALLCTRL + "answerCall",
        data_model=OptionalRef,
        summary="Answer an incoming call.",
    ),
    CommandSpec(
        name="rejectCall",
        command_uri=_CALLCTRL + "rejectCall",
        data_model=OptionalRef,
        summary="Reject an incoming call.",
    ),
    CommandSpec(
        name="ignoreCall",
        command_uri=_CALLCTRL + "ignoreCall",
        data_model=OptionalRef,
        summary="Ignore an incoming call (stop ringing, leave it to others).",
    ),
    CommandSpec(
        name="endCall",
        command_uri=_CALLCTRL + "endCall",
        data_model=RequiredRef,
        summary="End a call, held calls included (UCS 6.4.2+).",
    ),
    CommandSpec(
        name="holdCall",
        command_uri=_CALLCTRL + "holdCall",
        data_model=OptionalRef,
        summary="Put a call, or its conference, on hold.",
    ),
    CommandSpec(
        name="resumeCall",
        command_uri=_CALLCTRL + "resumeCall",
        data_model=RequiredRef,
        summary="Resume a held call.",
    ),
    CommandSpec(
        name="transferCall",
        command_uri=_CALLCTRL + "transferCall",
        data_model=TransferData,
        summary="Blind-transfer a call to a number.",
    ),
    CommandSpec(
        name="warmTransfer",
        command_uri=_CALLCTRL + "warmTransfer",
        data_model=WarmTransferData,
        summary="Transfer call A to the party of held call B (attended).",
        sip_only=True,
        firmware="UCS 6.4.2+ / PVOS 8.0+, over SIP only",
    ),
    CommandSpec(
        name="sendDTMF",
        command_uri=_CALLCTRL + "sendDTMF",
        data_model=DtmfData,
        summary="Send DTMF digits on the active call.",
    ),
    CommandSpec(
        name="mute",
        command_uri=_CALLCTRL + "mute",
        data_model=MuteData,
        summary="Mute (1) or unmute (0) the phone.",
    ),
    CommandSpec(
        name="joinCalls",
        command_uri=_CALLCTRL + "joinCalls",
        data_model=JoinData,
        summary="Join the active call and the held call into a conference.",
        firmware="UCS 6.x; PVOS 8.6.0+ on Edge E",
    ),
    CommandSpec(
        name="dial",
        command_uri=_CALLCTRL + "dial",
        data_model=DialData,
        summary="Place a call from a line to a number or SIP URI.",
    ),
)
