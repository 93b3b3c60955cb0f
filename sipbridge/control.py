"""One command, end to end, whatever the entry: locate, validate, encode, dispatch, record.

The HTTP API (and later the SIP ingress) call into `CallControl`; it owns the order of the steps
so every entry refuses bad input the same way and before anything reaches a phone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sipbridge import catalog
from sipbridge.catalog._fields import CallRef, Destination, Digits, LineNumber
from sipbridge.dispatch import Dispatcher
from sipbridge.errors import InvalidInput, NotFound, RemoteError
from sipbridge.outcome import accept_sip_answer
from sipbridge.sip import action_uri
from sipbridge.sip.sender import NotifySender
from sipbridge.tracker import ENDED, Call, Phone, TrackerStore, state_after

log = logging.getLogger(__name__)


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
    """An action of the front API and the Poly command it becomes."""

    name: str
    command: str
    body: type[ActionBody]
    data: Callable[[str, Any], dict[str, str]]
    summary: str


def _ref(call_id: str, _: Any) -> dict[str, str]:
    return {"Ref": call_id}


CALL_ACTIONS: dict[str, CallAction] = {
    action.name: action
    for action in (
        CallAction(
            name="answer",
            command="answerCall",
            body=NoBody,
            data=_ref,
            summary="Answer the ringing call.",
        ),
        CallAction(
            name="reject",
            command="rejectCall",
            body=NoBody,
            data=_ref,
            summary="Reject the ringing call.",
        ),
        CallAction(
            name="ignore",
            command="ignoreCall",
            body=NoBody,
            data=_ref,
            summary="Stop the phone ringing for the call.",
        ),
        CallAction(
            name="end", command="endCall", body=NoBody, data=_ref, summary="Hang up the call."
        ),
        CallAction(
            name="hold", command="holdCall", body=NoBody, data=_ref, summary="Put the call on hold."
        ),
        CallAction(
            name="resume",
            command="resumeCall",
            body=NoBody,
            data=_ref,
            summary="Resume the held call.",
        ),
        CallAction(
            name="transfer",
            command="transferCall",
            body=TransferBody,
            data=lambda call_id, body: {"Ref": call_id, "TransferDest": body.destination},
            summary="Blind-transfer the call.",
        ),
        CallAction(
            name="warm-transfer",
            command="warmTransfer",
            body=WarmTransferBody,
            data=lambda call_id, body: {"Ref-A": call_id, "Ref-B": body.other_call_id},
            summary="Attended transfer: connect this call to the party of other_call_id.",
        ),
        CallAction(
            name="dtmf",
            command="sendDTMF",
            body=DtmfBody,
            data=lambda _, body: {"Digits": body.digits},
            summary="Send DTMF digits on the phone's active call.",
        ),
        CallAction(
            name="mute",
            command="mute",
            body=NoBody,
            data=lambda _, __: {"state": "1"},
            summary="Mute the phone.",
        ),
        CallAction(
            name="unmute",
            command="mute",
            body=NoBody,
            data=lambda _, __: {"state": "0"},
            summary="Unmute the phone.",
        ),
        CallAction(
            name="join",
            command="joinCalls",
            body=NoBody,
            data=lambda _, __: {},
            summary="Join the phone's active and held calls into a conference.",
        ),
    )
}


@dataclass(frozen=True, kw_only=True)
class CommandResult:
    """What the caller learns: who got which command, and what the phone answered."""

    phone: str
    call_id: str | None
    command_uri: str
    transport: Literal["sip"]
    sip_status: int
    sip_reason: str
    latency_ms: float


class CallControl:
    def __init__(self, store: TrackerStore, sender: NotifySender, dispatcher: Dispatcher) -> None:
        self.store = store
        self._sender = sender
        self._dispatcher = dispatcher

    async def act_on_call(
        self, call_id: str, action_name: str, body: Mapping[str, Any]
    ) -> CommandResult:
        action = CALL_ACTIONS.get(action_name)
        if action is None:
            raise NotFound(
                f"unknown action {action_name!r}; known: {', '.join(sorted(CALL_ACTIONS))}"
            )
        parsed = _validate_body(action.body, body)
        call, phone = self.store.locate(call_id)
        other: Call | None = None
        if isinstance(parsed, WarmTransferBody):
            other = self._other_call_on_same_phone(parsed.other_call_id, phone)
        spec = catalog.lookup(action.command)
        command = catalog.build(spec, action.data(call_id, parsed))
        result = await self._deliver(phone, command, call_id=call_id)
        self._record(action_name, call, other)
        return result

    async def send_command(
        self, phone_id: str, command_uri: str, data: Mapping[str, Any]
    ) -> CommandResult:
        """A raw Poly command, validated against the catalog, to a phone."""
        phone = self.store.phone(phone_id)
        command = catalog.build(catalog.lookup(command_uri), data)
        return await self._deliver(phone, command, call_id=None)

    async def dial(self, phone_id: str, body: Mapping[str, Any]) -> CommandResult:
        parsed = _validate_body(DialBody, body)
        assert isinstance(parsed, DialBody)
        phone = self.store.phone(phone_id)
        data = {"Dest": parsed.destination}
        if parsed.line is not None:
            data["Line"] = parsed.line
        if parsed.type is not None:
            data["Type"] = parsed.type
        command = catalog.build(catalog.lookup("dial"), data)
        return await self._deliver(phone, command, call_id=None)

    def _other_call_on_same_phone(self, other_call_id: str, phone: Phone) -> Call:
        other = self.store.call(other_call_id)
        if other.phone_id != phone.id:
            raise InvalidInput.one(
                "other_call_id",
                f"call {other_call_id!r} is on phone {other.phone_id!r}, not on {phone.id!r}",
            )
        return other

    async def _deliver(
        self, phone: Phone, command: catalog.Command, *, call_id: str | None
    ) -> CommandResult:
        body = catalog.encode(command)  # 413 here: before anything is queued or sent
        request = action_uri.compose(
            contact=phone.contact,
            transport=phone.transport,
            body=body,
            local_contact=self._sender.local_contact,
        )
        context: dict[str, Any] = {
            "phone": phone.id,
            "call_id": call_id,
            "command_uri": command.spec.command_uri,
            "transport": "sip",
        }
        try:
            delivery = await self._dispatcher.deliver(phone.id, request)
            answer = accept_sip_answer(delivery.answer)
        except RemoteError as exc:
            exc.context.update(context)
            log.warning("%s to phone %s failed: %s", command.spec.name, phone.id, exc.detail)
            raise
        log.info(
            "%s to phone %s: %d %s in %.1f ms",
            command.spec.name,
            phone.id,
            answer.status,
            answer.reason,
            delivery.latency_ms,
        )
        return CommandResult(
            phone=phone.id,
            call_id=call_id,
            command_uri=command.spec.command_uri,
            transport="sip",
            sip_status=answer.status,
            sip_reason=answer.reason,
            latency_ms=round(delivery.latency_ms, 3),
        )

    def _record(self, action_name: str, call: Call, other: Call | None) -> None:
        """Update the tracker only after the phone accepted the command."""
        after = state_after(action_name, call.state)
        for tracked in (call, other):
            if tracked is None:
                continue
            if after == ENDED:
                self.store.remove_call(tracked.call_id)
            elif tracked is call:
                self.store.set_call_state(tracked.call_id, after)


def _validate_body(model: type[ActionBody], body: Mapping[str, Any]) -> ActionBody:
    try:
        return model.model_validate(dict(body))
    except ValidationError as exc:
        raise InvalidInput(catalog.problems_from_validation(exc)) from exc
