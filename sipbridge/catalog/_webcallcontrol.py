"""WebCallControl.*: call control and call queries (manuals 000, 001, 002, 003).

Call control (answer ... dial) can travel inside a NOTIFY; the queries answer with data and so
go over HTTP. Ref / Ref-A / Ref-B take the phone's call handle or, from UCS 6.4.2 / PVOS 8.0,
the SIP Call-ID (manual 002, "REST API commands and structure").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from sipbridge.catalog._commands import CommandData, CommandSpec, NoData, Output
from sipbridge.catalog._fields import CallRef, Destination, Digits, Digits1to5, LineNumber
from sipbridge.catalog._lines import (
    MANUAL_000,
    MANUAL_001,
    MANUAL_002,
    MANUAL_003,
    Line,
    documented_in,
)

# -- inputs -----------------------------------------------------------------------------------


class OptionalRef(CommandData):
    # Manual 002: Ref is optional for answer/reject/ignore/hold (the phone then acts on its
    # active call); sipbridge always sends one when it acts by Call-ID.
    ref: CallRef | None = Field(None, alias="Ref")


class RequiredRef(CommandData):
    ref: CallRef = Field(alias="Ref")


class ResumeData(CommandData):
    """Manuals 000 and 002 call Ref "mandatory" and, in the notes, the input "optional" (the
    active held call resumes). Required here: an unrelated held call must not resume by
    accident (docs/profiles.md, "Where the manuals disagree")."""

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
    line: LineNumber | None = Field(
        None,
        alias="Line",
        description=(
            "Optional. VVX, CCX, Edge E, Trio C60: line 1 when left out (manual 002). Trio "
            "8300/8500/8800 on UCS 5.9.2: a line whose dial plan matches Dest when several "
            "lines and dial-plan line switching are configured, else line 1 (manual 003, Dial)."
        ),
    )
    type: Literal["SIP", "TEL", "H323"] | None = Field(
        None, alias="Type", description="Defaults to TEL."
    )


CallHandle = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]{1,32}$")]


class CallStatusQuery(CommandData):
    """callStatus v2 takes handle, or line, or line and sequence -- nothing else (manual 002)."""

    handle: CallHandle | None = Field(None, description="A call handle, e.g. b5576ff8.")
    line: LineNumber | None = None
    sequence: Digits1to5 | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> CallStatusQuery:
        problem = call_status_query_problem(
            handle=self.handle is not None,
            line=self.line is not None,
            sequence=self.sequence is not None,
        )
        if problem:
            raise ValueError(problem)
        return self


def call_status_query_problem(*, handle: bool, line: bool, sequence: bool) -> str | None:
    """Why a callStatus v2 query is refused, or None: handle | line | line+sequence | nothing."""
    if handle and (line or sequence):
        return "give handle alone, not with line or sequence"
    if sequence and not line:
        return "sequence needs line"
    return None


# -- outputs ----------------------------------------------------------------------------------


class CallStatusOut(Output):
    CallHandle: str | None = None
    Type: str | None = None
    Protocol: str | None = None
    CallState: str | None = None
    LineID: str | None = None
    RemotePartyName: str | None = None
    RemotePartyNumber: str | None = None
    DurationInSeconds: str | None = None


class CallStatusV2Out(Output):
    CallHandle: str | None = None
    Type: str | None = None
    CallState: str | None = None
    Protocol: str | None = None
    RemotePartyName: str | None = None
    RemotePartyNumber: str | None = None
    LineID: str | None = None
    CallSequence: str | None = None
    UIAppearanceIndex: str | None = None
    StartTime: str | None = None
    DurationSeconds: str | None = None
    Ringing: str | None = None
    Muted: str | None = None
    RTPPort: str | None = None
    RTCPPort: str | None = None


class CallLogEntry(Output):
    LineNumber: str | None = None
    StartTime: str | None = None
    RemotePartyName: str | None = None
    RemotePartyNumber: str | None = None
    Duration: str | None = None


class CallLogsOut(Output):
    missed: list[CallLogEntry] | None = None
    received: list[CallLogEntry] | None = None
    placed: list[CallLogEntry] | None = None


class SipCall(Output):
    CallState: str | None = None
    CallID: str | None = None


class SipUser(Output):
    Name: str | None = None
    LineNumber: str | None = None
    TotalEvents: str | None = None
    TotalCalls: str | None = None
    Calls: list[SipCall] | None = None


class SipStatusOut(Output):
    User: list[SipUser] | None = None
    TotalUser: str | None = None


class PresenceData(Output):
    Presence: str | None = None


class PresenceOut(Output):
    """getPresence: at the top level next to Status in manual 002 (UCS 6, PVOS); UCS 5.8 nests
    it in `data` (manual 001, WebCallControl.GetCurrentPresence). Read `Presence`, else
    `data.Presence`."""

    Presence: str | None = Field(None, description="Manual 002 (UCS 6, PVOS): top level.")
    data: PresenceData | None = Field(None, description="Manual 001 (UCS 5.8): nested here.")


# -- the commands -----------------------------------------------------------------------------

_CALLCTRL = "/api/v1/callctrl/"
_EVERYWHERE = documented_in(MANUAL_000, MANUAL_001, MANUAL_002, MANUAL_003)


def _ctrl(
    name: str, manual: str, model: type[CommandData], summary: str, note: str = ""
) -> CommandSpec:
    return CommandSpec(
        name=name,
        command_uri=_CALLCTRL + name,
        data_model=model,
        summary=summary,
        manual_name=f"WebCallControl.{manual}",
        notify_in_auto=True,  # manual 002, "Delivering REST API commands over SIP"
        note=note,
    )


CALL_CONTROL: tuple[CommandSpec, ...] = (
    _ctrl("answerCall", "AnswerCall", OptionalRef, "Answer an incoming call."),
    _ctrl("rejectCall", "RejectCall", OptionalRef, "Reject an incoming call."),
    _ctrl("ignoreCall", "IgnoreCall", OptionalRef, "Stop ringing, leave the call to others."),
    _ctrl(
        "endCall",
        "EndCall",
        RequiredRef,
        "End a call.",
        note="A held call: ended from UCS 6.4.2 (manual 002); 4003 on UCS 6.4.0 (000) and "
        "Trio UCS 5.9.2 (003).",
    ),
    _ctrl("holdCall", "HoldCall", OptionalRef, "Put a call, or its conference, on hold."),
    _ctrl("resumeCall", "ResumeCall", ResumeData, "Resume a held call."),
    _ctrl("transferCall", "TransferCall", TransferData, "Blind-transfer a call to a number."),
    CommandSpec(
        name="warmTransfer",
        command_uri=_CALLCTRL + "warmTransfer",
        data_model=WarmTransferData,
        summary="Transfer call A to the party of held call B (attended).",
        manual_name="WebCallControl.WarmTransfer",
        delivery="sip-only",
        notify_in_auto=True,
        # Manual 002, WebCallControl.WarmTransfer: added in UCS 6.4.2 and PVOS 8.0, SIP only.
        # No other line: not in 000/001/003, and 002 names no Trio UCS 7 or UCS 5 release.
        availability={"ucs-6": (6, 4, 2), "pvos": (8, 0)},
    ),
    _ctrl("sendDTMF", "SendDTMF", DtmfData, "Send DTMF digits on the active call."),
    _ctrl("mute", "MuteCall", MuteData, "Mute (1) or unmute (0) the phone."),
    CommandSpec(
        name="joinCalls",
        command_uri=_CALLCTRL + "joinCalls",
        data_model=JoinData,
        summary="Join the active call and the held call into a conference.",
        manual_name="WebCallControl.JoinCalls",
        notify_in_auto=True,
        # Manual 002, document change history: added in PVOS 8.6.0 (Edge E, Edge V) and 9.5.0
        # (CCX, Trio C60; their profiles tighten). Not in 000, 001 or 003: PVOS only.
        availability={"pvos": (8, 6)},
    ),
    _ctrl(
        "dial",
        "Dial",
        DialData,
        "Place a call from a line to a number or SIP URI.",
        note="Trio UCS 5.9.2 answers only 2000, 4000 or 5000 (manual 003); 002 adds 4002.",
    ),
)


def _query(
    name: str,
    uri: str,
    manual: str,
    summary: str,
    output: type[Output] | None,
    *,
    data: type[CommandData] = NoData,
    method: Literal["GET", "POST"] = "GET",
    method_on: Mapping[Line, Literal["GET", "POST"]] | None = None,
    note: str = "",
) -> CommandSpec:
    return CommandSpec(
        name=name,
        command_uri=uri,
        data_model=data,
        summary=summary,
        manual_name=f"WebCallControl.{manual}",
        http_method=method,
        http_method_on=method_on or {},
        delivery="http-only",
        availability=_EVERYWHERE,
        output_model=output,
        query=data is not NoData,
        note=note,
    )


_LOGS = "/api/v1/mgmt/callLogs"

CALL_QUERIES: tuple[CommandSpec, ...] = (
    _query(
        "callStatus",
        "/api/v1/webCallControl/callStatus",
        "CallStatus",
        "The phone's call (v1, one call).",
        CallStatusOut,
    ),
    _query(
        "callStatusV2",
        "/api/v2/webCallControl/callStatus",
        "CallStatus Version 2",
        "Every call on the phone; filter by handle, line, or line and sequence.",
        CallStatusV2Out,
        data=CallStatusQuery,
    ),
    _query("callLogs", _LOGS, "CallLogs", "Missed, received and placed calls.", CallLogsOut),
    _query("callLogsMissed", _LOGS + "/missed", "CallLogs", "Missed calls.", CallLogsOut),
    _query("callLogsReceived", _LOGS + "/received", "CallLogs", "Received calls.", CallLogsOut),
    _query("callLogsPlaced", _LOGS + "/placed", "CallLogs", "Placed calls.", CallLogsOut),
    _query(
        "sipStatus",
        "/api/v1/webCallControl/sipStatus",
        "SipStatus",
        "SIP registrations, events and calls per user.",
        SipStatusOut,
        # Manual 002 gives POST; 000 (UCS 6.4.0) and 001 (UCS 5.8.0) give GET. 003's page is
        # blank: Trio UCS 5 follows its sibling UCS 5 / 6 manuals.
        method="POST",
        method_on={"ucs-5": "GET", "ucs-6": "GET", "trio-ucs-5": "GET"},
        note="GET on ucs-5, ucs-6 and trio-ucs-5 (manuals 000, 001); POST on trio-ucs-7 and "
        "pvos (manual 002).",
    ),
    _query(
        "getPresence",
        "/api/v1/mgmt/getPresence",
        "GetCurrentPresence",
        "The phone's presence (Skype for Business mode only; else 4004).",
        PresenceOut,
    ),
)

WEB_CALL_CONTROL: tuple[CommandSpec, ...] = CALL_CONTROL + CALL_QUERIES
