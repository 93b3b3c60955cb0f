"""One command, end to end, whatever the entry: locate, validate, encode, dispatch, record.

The HTTP API (and later the SIP ingress) call into `CallControl`; it owns the order of the steps
so every entry refuses bad input the same way and before anything reaches a phone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sipbridge import catalog
from sipbridge.catalog._fields import CallRef, Destination, Digits, LineNumber
from sipbridge.dispatch import Dispatcher
from sipbridge.errors import (
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PhoneTimeout,
    PhoneUnreachable,
    RemoteError,
    SipBridgeError,
    TransportUnavailable,
)
from sipbridge.outcome import accept_http_answer, accept_sip_answer
from sipbridge.phone_http import HttpAnswer
from sipbridge.profiles import Capabilities
from sipbridge.routing import PhoneRoutes, Requested, Transport, choose_transport, refs_call_id
from sipbridge.sip import action_uri
from sipbridge.sip.action_uri import SipAnswer
from sipbridge.sip.sender import NotifySender
from sipbridge.tracker import ENDED, Call, Phone, TrackerStore, state_after
from sipbridge.tracker.group_commit import GroupCommit

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
    transport: Transport
    sip_status: int | None
    sip_reason: str | None
    latency_ms: float
    # Over HTTP: the phone's HTTP status, its Poly status code and meaning, and what it returned.
    http_status: int | None = None
    poly_status: int | None = None
    poly_meaning: str | None = None
    data: Any = None
    # The call-state write still committing when act_on_call returned early (await_recorded=
    # False): the caller awaits it after its own group write, so a failed one is an error, not
    # a success (CommandLog.run). Never part of the answer.
    recorded: Annotated[Any, Field(exclude=True)] = field(default=None, repr=False, compare=False)


class CallControl:
    def __init__(
        self,
        store: TrackerStore,
        sender: NotifySender,
        dispatcher: Dispatcher,
        *,
        reports_contact: str | None = None,
        outbound_proxy: str | None = None,
        routes: PhoneRoutes | None = None,
        writes: GroupCommit | None = None,
        sip_over_tls: bool = True,
        reports_contact_tls: str | None = None,
    ) -> None:
        self.store = store
        # Writes after a command go through a group commit shared with the command log.
        self.writes = writes or GroupCommit(store)
        # Profiles, phone credentials and HTTP settings; None: SIP only, no profile checks.
        self._routes = routes
        self._sender = sender
        self._dispatcher = dispatcher
        # The NOTIFY's Contact: sipbridge's listener when it runs, so a phone's reports about a
        # command (Edge E sends them as INFO, DESIGN.md) reach it; else the UA itself.
        self._reports_contact = reports_contact
        self._outbound_proxy = outbound_proxy
        # False when the UA has no TLS transport (sip_tls_port unset): sips: phones get a 422.
        self._sip_over_tls = sip_over_tls
        # The listener over TLS, for phones reached over TLS: their reports come back the same
        # way, and a sips: Request-URI wants a sips: Contact (RFC 3261 §8.1.1.8).
        self._reports_contact_tls = reports_contact_tls

    async def act_on_call(
        self,
        call_id: str,
        action_name: str,
        body: Mapping[str, Any],
        transport: Requested = "auto",
        *,
        await_recorded: bool = True,
    ) -> CommandResult:
        """Locate the call, send the action's command to its phone, record the new state.

        `await_recorded=False` is for a caller that awaits a group write of its own before it
        answers (`CommandLog.run`): the state write then shares that write's transaction.
        """
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
        try:
            result = await self._deliver(phone, command, call_id=call_id, requested=transport)
        except PhoneTimeout as exc:
            if exc.late is not None:
                # The phone may still take it: a late 2xx changes the call's state as one in
                # time would (a group write, before the command log records the late answer).
                exc.late.add_done_callback(
                    lambda late: self._record_late(late, action_name, call, other)
                )
            raise
        recorded = self.writes.defer(lambda: self._record(action_name, call, other))
        if not await_recorded:
            # The caller's next group write (the command log's) commits with this one, or
            # after it, and the caller answers only then: one transaction, not two.
            recorded.add_done_callback(_log_failed_record)
            return replace(result, recorded=recorded)
        await recorded
        return result

    async def send_command(
        self,
        phone_id: str,
        command_uri: str,
        data: Mapping[str, Any] | Sequence[Any],
        transport: Requested = "auto",
    ) -> CommandResult:
        """A raw Poly command, validated against the catalog, to a phone."""
        phone = self.store.phone(phone_id)
        command = catalog.build(catalog.lookup(command_uri), data)
        return await self._deliver(phone, command, call_id=None, requested=transport)

    async def dial(
        self, phone_id: str, body: Mapping[str, Any], transport: Requested = "auto"
    ) -> CommandResult:
        parsed = _validate_body(DialBody, body)
        assert isinstance(parsed, DialBody)
        phone = self.store.phone(phone_id)
        data = {"Dest": parsed.destination}
        if parsed.line is not None:
            data["Line"] = parsed.line
        if parsed.type is not None:
            data["Type"] = parsed.type
        command = catalog.build(catalog.lookup("dial"), data)
        return await self._deliver(phone, command, call_id=None, requested=transport)

    def _other_call_on_same_phone(self, other_call_id: str, phone: Phone) -> Call:
        other = self.store.call(other_call_id)
        if other.phone_id != phone.id:
            raise InvalidInput.one(
                "other_call_id",
                f"call {other_call_id!r} is on phone {other.phone_id!r}, not on {phone.id!r}",
            )
        return other

    async def _deliver(
        self,
        phone: Phone,
        command: catalog.Command,
        *,
        call_id: str | None,
        requested: Requested = "auto",
    ) -> CommandResult:
        # Profile, transport, Ref and size are all checked before anything is queued or sent.
        capabilities = self._routes.capabilities(phone) if self._routes else None
        transport = choose_transport(command.spec, capabilities, requested)
        if capabilities is not None:
            capabilities.refuse_data(command)  # keys, parameter counts (docs/profiles.md)
        if call_id is not None:
            refs_call_id(capabilities, command.as_json()["data"])
        if transport == "http":
            return await self._deliver_http(phone, command, call_id, capabilities)
        body = catalog.encode(command)  # 413 here: before anything is queued or sent
        if capabilities is not None and len(body) > capabilities.profile.body_limit:
            raise PayloadTooLarge(
                f"the command body would be {len(body)} bytes; "
                f"{capabilities.profile.title} accepts {capabilities.profile.body_limit}"
            )
        request = action_uri.compose(
            contact=phone.contact,
            transport=phone.transport,
            body=body,
            local_contact=self._reports_contact_for(phone),
            outbound_proxy=self._outbound_proxy,
            credentials=None if self._routes is None else self._routes.sip_credentials(phone.id),
        )
        hop = action_uri.next_hop_transport(request)
        if not self._sip_over_tls and hop == "tls":
            raise TransportUnavailable.one(
                "transport",
                f"phone {phone.id} is reached over TLS ({phone.contact}) and sipbridge's SIP "
                "over TLS is off: set sip_tls_port (docs/configuration.md, TLS)",
            )
        if not command.spec.clear_sip and hop != "tls":
            raise TransportUnavailable.one(
                "transport",
                f"{command.spec.name} can carry passwords and would travel in clear SIP "
                f"({hop.upper()}) to phone {phone.id}: send it over HTTP(S), or reach the phone "
                "over SIP TLS",
            )
        return await self._on_lane(
            phone, command, call_id, "sip", request, _sip_result(phone, command, call_id)
        )

    def _reports_contact_for(self, phone: Phone) -> str:
        if phone.transport == "tls" and self._reports_contact_tls is not None:
            if phone.contact.lower().startswith("sips:"):
                return self._reports_contact_tls
            return self._reports_contact_tls.replace("sips:", "sip:", 1) + ";transport=tls"
        return self._reports_contact or self._sender.local_contact

    async def _on_lane(
        self,
        phone: Phone,
        command: catalog.Command,
        call_id: str | None,
        transport: Transport,
        request: action_uri.OutgoingRequest,
        result_of: Callable[[SipAnswer, float], CommandResult],
    ) -> CommandResult:
        """Queue `request` in the phone's lane, judge the answer; a failure carries the facts.

        A command that timed out after it left still ends on the phone: its late answer is
        judged the same way, into `PhoneTimeout.late` (a CommandResult, or the RemoteError).
        """
        started = time.perf_counter()
        facts = {
            "phone": phone.id,
            "call_id": call_id,
            "command_uri": command.spec.command_uri,
            "transport": transport,
        }
        try:
            delivery = await self._dispatcher.deliver(phone.id, request)
            return result_of(delivery.answer, delivery.latency_ms)
        except RemoteError as exc:
            exc.context.update(facts)
            if isinstance(exc, PhoneTimeout) and exc.late is not None:
                exc.late = _judged_later(exc.late, result_of, started, facts)
            log.warning(
                "%s to phone %s over %s failed: %s",
                command.spec.name,
                phone.id,
                transport.upper(),
                exc.detail,
            )
            raise

    async def _deliver_http(
        self,
        phone: Phone,
        command: catalog.Command,
        call_id: str | None,
        capabilities: Capabilities | None,
    ) -> CommandResult:
        """The same command through the phone's REST API, in the same per-phone lane."""
        if self._routes is None:
            raise TransportUnavailable.one("transport", "the phone HTTP transport is not set up")
        exchange = self._routes.exchange(phone, command, capabilities)
        return await self._on_lane(
            phone, command, call_id, "http", exchange, _http_result(phone, command, call_id)
        )

    def _record(self, action_name: str, call: Call, other: Call | None) -> None:
        """Update the tracker only after the phone accepted the command (a group write)."""
        after = state_after(action_name, call.state)
        for tracked in (call, other):
            if tracked is None:
                continue
            if after == ENDED:
                self.store.remove_call(tracked.call_id)
            elif tracked is call:
                self.store.set_call_state(tracked.call_id, after)

    def _record_late(
        self,
        late: asyncio.Future[CommandResult],
        action_name: str,
        call: Call,
        other: Call | None,
    ) -> None:
        if late.cancelled() or late.exception() is not None:
            return  # a refusal or no answer: the tracker stays as it was
        recorded = self.writes.defer(lambda: self._record(action_name, call, other))
        recorded.add_done_callback(_log_failed_record)


def _log_failed_record(recorded: asyncio.Future[None]) -> None:
    if not recorded.cancelled() and recorded.exception() is not None:
        log.error("recording the call state failed: %s", recorded.exception())


def _sip_result(
    phone: Phone, command: catalog.Command, call_id: str | None
) -> Callable[[SipAnswer, float], CommandResult]:
    def result_of(answer: SipAnswer, latency_ms: float) -> CommandResult:
        answer = accept_sip_answer(answer)
        log.info(
            "%s to phone %s: %d %s in %.1f ms",
            command.spec.name,
            phone.id,
            answer.status,
            answer.reason,
            latency_ms,
        )
        return CommandResult(
            phone=phone.id,
            call_id=call_id,
            command_uri=command.spec.command_uri,
            transport="sip",
            sip_status=answer.status,
            sip_reason=answer.reason,
            latency_ms=round(latency_ms, 3),
        )

    return result_of


def _http_result(
    phone: Phone, command: catalog.Command, call_id: str | None
) -> Callable[[SipAnswer, float], CommandResult]:
    def result_of(answer: SipAnswer, latency_ms: float) -> CommandResult:
        # The lane answers an HttpExchange with an HttpAnswer (sipbridge.phone_http).
        assert isinstance(answer, HttpAnswer), "an HttpExchange is answered by HTTP"
        outcome = accept_http_answer(answer)
        log.info(
            "%s to phone %s over HTTP: %d (Poly %s) in %.1f ms",
            command.spec.name,
            phone.id,
            outcome.http_status,
            outcome.poly_status,
            latency_ms,
        )
        return CommandResult(
            phone=phone.id,
            call_id=call_id,
            command_uri=command.spec.command_uri,
            transport="http",
            sip_status=None,
            sip_reason=None,
            latency_ms=round(latency_ms, 3),
            http_status=outcome.http_status,
            poly_status=outcome.poly_status,
            poly_meaning=outcome.poly_meaning,
            data=outcome.data,
        )

    return result_of


def _judged_later(
    flight: asyncio.Future[Any],
    result_of: Callable[[SipAnswer, float], CommandResult],
    started: float,
    facts: Mapping[str, object],
) -> asyncio.Future[CommandResult]:
    """The late answer of a command whose caller got 504, judged like an answer in time."""
    judged: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()

    def judge(done: asyncio.Future[Any]) -> None:
        try:
            judged.set_result(result_of(done.result(), (time.perf_counter() - started) * 1000))
        except SipBridgeError as exc:
            exc.context.update(facts)
            judged.set_exception(exc)
        except BaseException as exc:  # a cancelled flight or a sender's bug: still an ending
            failure = PhoneUnreachable(f"the command's transaction failed: {exc!r}")
            failure.context.update(facts)
            judged.set_exception(failure)

    flight.add_done_callback(judge)
    # Whoever is told about it (the command log) reads the outcome; nobody else has to.
    judged.add_done_callback(lambda done: done.cancelled() or done.exception())
    return judged


def _validate_body(model: type[ActionBody], body: Mapping[str, Any]) -> ActionBody:
    try:
        return model.model_validate(dict(body))
    except ValidationError as exc:
        raise InvalidInput(catalog.problems_from_validation(exc)) from exc
