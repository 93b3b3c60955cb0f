"""One command, end to end, whatever the entry: locate → plan → the phone's lane → judge → record.

The HTTP API and the PBX relay call into `CallControl`; it owns the order of the steps, so every
entry refuses bad input the same way and before anything reaches a phone, and every command is
recorded by the journal (`journal.py`) before its caller is answered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from sipbridge import catalog
from sipbridge.commands.actions import (
    CALL_ACTIONS,
    ENDED,
    ActionBody,
    CallAction,
    DialBody,
    WarmTransferBody,
)
from sipbridge.commands.journal import Completed, Journal, StateChange
from sipbridge.commands.lanes import Lanes
from sipbridge.commands.outcome import CommandResult, accept_http_answer, accept_sip_answer
from sipbridge.commands.plan import Carrier, HttpPlan, Plan, Planner, Requested, SipPlan
from sipbridge.errors import (
    InvalidInput,
    NotFound,
    PhoneTimeout,
    PhoneUnreachable,
    RemoteError,
    SipBridgeError,
    StateConflict,
    TransportUnavailable,
    UnknownPhone,
)
from sipbridge.phone.http import HttpAnswer, PhoneHttpClient
from sipbridge.sip.action_uri import SipAnswer
from sipbridge.sip.sender import NotifySender
from sipbridge.tracker import Call, Phone, TrackerStore

log = logging.getLogger(__name__)

Answer = SipAnswer | HttpAnswer


@dataclass(frozen=True, kw_only=True)
class CommandOptions:
    """How the caller wants a command handled.

    `client_state`: the caller's own string, echoed on every event the command causes.
    `force`: skip the state guard (actions.py `requires`). `dry_run`: validate, locate and plan
    the command, and answer what would be sent (`Planned`) without sending or recording it.
    """

    client_state: str | None = None
    force: bool = False
    dry_run: bool = False


DEFAULT = CommandOptions()


@dataclass(frozen=True, kw_only=True)
class Planned:
    """A dry run's answer: the command as it would leave, nothing sent."""

    phone: str
    call_id: str | None
    command_uri: str
    transport: Carrier
    request: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class PbxCommand:
    """A command a PBX sent in an ACTION-URI NOTIFY, and the phone its Request-URI names."""

    command_uri: str
    data: dict[str, Any]
    phone_user: str | None


@dataclass(frozen=True, kw_only=True)
class _Facts:
    """What a result and a failure say about the command: who, which, how."""

    phone: str
    call_id: str | None
    command_uri: str
    transport: Carrier


class CallControl:
    def __init__(
        self,
        store: TrackerStore,
        *,
        planner: Planner,
        lanes: Lanes,
        journal: Journal,
        sip: NotifySender,
        http: PhoneHttpClient | None = None,
    ) -> None:
        self.store = store
        self._planner = planner
        self._lanes = lanes
        self._journal = journal
        self._sip = sip
        self._http = http

    # -- the entries ---------------------------------------------------------------------------

    async def act_on_call(
        self,
        call_id: str,
        action_name: str,
        body: Mapping[str, Any],
        transport: Requested = "auto",
        *,
        source: str,
        options: CommandOptions = DEFAULT,
    ) -> CommandResult | Planned:
        """Locate the call, send the action's command to its phone, record the new state."""
        steps = self._act(call_id, action_name, body, transport, options)
        return await self._run(source, steps, options)

    async def send_command(
        self,
        phone_id: str,
        command_uri: str,
        data: Mapping[str, Any] | Sequence[Any],
        transport: Requested = "auto",
        *,
        source: str,
        options: CommandOptions = DEFAULT,
    ) -> CommandResult | Planned:
        """A raw Poly command, validated against the catalog, to a phone."""
        steps = self._command(phone_id, command_uri, data, transport, options)
        return await self._run(source, steps, options)

    async def dial(
        self,
        phone_id: str,
        body: Mapping[str, Any],
        transport: Requested = "auto",
        *,
        source: str,
        options: CommandOptions = DEFAULT,
    ) -> CommandResult | Planned:
        steps = self._dial(phone_id, body, transport, options)
        return await self._run(source, steps, options)

    async def pbx_command(
        self, parse: Callable[[], PbxCommand], *, source: str, deadline: float
    ) -> CommandResult:
        """A PBX's command (`parse` reads it from the NOTIFY: a bad body is recorded like any
        refusal), to the phone the Request-URI or the body's Ref names, within `deadline`."""
        result = await self._run(source, self._pbx(parse, deadline), DEFAULT)
        assert isinstance(result, CommandResult)
        return result

    async def _run(
        self,
        source: str,
        steps: Coroutine[Any, Any, Completed | Planned],
        options: CommandOptions,
    ) -> CommandResult | Planned:
        """A dry run's plan as it is (never recorded); a command through the journal."""
        if options.dry_run:
            planned = await steps
            assert isinstance(planned, Planned), "a dry run never sends"
            return planned

        async def completed() -> Completed:
            done = await steps
            assert isinstance(done, Completed), "only a dry run plans without sending"
            return done

        return await self._journal.run(source, completed(), client_state=options.client_state)

    # -- the steps -----------------------------------------------------------------------------

    async def _act(
        self,
        call_id: str,
        action_name: str,
        body: Mapping[str, Any],
        transport: Requested,
        options: CommandOptions,
    ) -> Completed | Planned:
        action = CALL_ACTIONS.get(action_name)
        if action is None:
            raise NotFound(
                f"unknown action {action_name!r}; known: {', '.join(sorted(CALL_ACTIONS))}"
            )
        parsed = _validate_body(action.body, body)
        call, phone = self.store.locate(call_id)
        if action.requires is not None and call.state not in action.requires and not options.force:
            wanted = " or ".join(sorted(action.requires))
            raise StateConflict(
                f"call {call_id} is {call.state}; {action.name} needs it {wanted} "
                "(add ?force=true to send it anyway: the phone may know better)",
                state=call.state,
            )
        other: Call | None = None
        if isinstance(parsed, WarmTransferBody):
            other = self._other_call_on_same_phone(parsed.other_call_id, phone)
        command = catalog.build(catalog.lookup(action.command), action.data(call_id, parsed))
        return await self._deliver(
            phone,
            command,
            call_id=call_id,
            requested=transport,
            change=self._state_change(action, call, other, options.client_state),
            dry_run=options.dry_run,
        )

    async def _command(
        self,
        phone_id: str,
        command_uri: str,
        data: Mapping[str, Any] | Sequence[Any],
        transport: Requested,
        options: CommandOptions,
    ) -> Completed | Planned:
        phone = self.store.phone(phone_id)
        command = catalog.build(catalog.lookup(command_uri), data)
        return await self._deliver(
            phone, command, call_id=None, requested=transport, dry_run=options.dry_run
        )

    async def _dial(
        self, phone_id: str, body: Mapping[str, Any], transport: Requested, options: CommandOptions
    ) -> Completed | Planned:
        parsed = _validate_body(DialBody, body)
        assert isinstance(parsed, DialBody)
        phone = self.store.phone(phone_id)
        data = {"Dest": parsed.destination}
        if parsed.line is not None:
            data["Line"] = parsed.line
        if parsed.type is not None:
            data["Type"] = parsed.type
        command = catalog.build(catalog.lookup("dial"), data)
        return await self._deliver(
            phone, command, call_id=None, requested=transport, dry_run=options.dry_run
        )

    async def _pbx(self, parse: Callable[[], PbxCommand], deadline: float) -> Completed | Planned:
        wanted = parse()
        phone = self._phone_for(wanted)
        command = catalog.build(catalog.lookup(wanted.command_uri), wanted.data)
        return await self._deliver(
            phone, command, call_id=None, requested="auto", deadline=deadline
        )

    def _phone_for(self, wanted: PbxCommand) -> Phone:
        """(a) The Request-URI names a registered phone; (b) else the body's Ref names a call."""
        if wanted.phone_user:
            try:
                return self.store.phone(wanted.phone_user)
            except UnknownPhone:
                pass
        ref = wanted.data.get("Ref") or wanted.data.get("Ref-A")
        if not isinstance(ref, str) or not ref:
            raise NotFound(
                f"no registered phone {wanted.phone_user!r} and no Ref / Ref-A in the body to "
                "find one by"
                if wanted.phone_user
                else "no Ref / Ref-A in the body to find the phone by"
            )
        return self.store.locate(ref)[1]

    def _other_call_on_same_phone(self, other_call_id: str, phone: Phone) -> Call:
        other = self.store.call(other_call_id)
        if other.phone_id != phone.id:
            raise InvalidInput.one(
                "other_call_id",
                f"call {other_call_id!r} is on phone {other.phone_id!r}, not on {phone.id!r}",
            )
        return other

    def _state_change(
        self, action: CallAction, call: Call, other: Call | None, client_state: str | None
    ) -> StateChange | None:
        """What the tracker records once the phone accepted `action` (None: nothing changes)."""
        if action.after is None:
            return None
        after = action.state_after(call.state)
        store = self.store

        def change() -> None:
            if after == ENDED:
                for tracked in (call, other):
                    if tracked is not None:
                        store.remove_call(tracked.call_id, client_state=client_state)
            else:
                store.set_call_state(call.call_id, after, client_state=client_state)

        return change

    async def _deliver(
        self,
        phone: Phone,
        command: catalog.Command,
        *,
        call_id: str | None,
        requested: Requested,
        change: StateChange | None = None,
        deadline: float | None = None,
        dry_run: bool = False,
    ) -> Completed | Planned:
        """Plan the command, send it in the phone's lane, judge the answer (a dry run: the
        plan, not sent).

        A command that timed out after it left still ends on the phone: its late answer is
        judged the same way, into `PhoneTimeout.late` (a `Completed`, or the RemoteError), which
        the journal records with its state change.
        """
        plan = self._planner.plan(
            phone, command, requested=requested, by_call_id=call_id is not None
        )
        if isinstance(plan, HttpPlan) and self._http is None:
            raise TransportUnavailable.one("transport", "the phone HTTP transport is not set up")
        facts = _Facts(
            phone=phone.id,
            call_id=call_id,
            command_uri=command.spec.command_uri,
            transport=plan.carrier,
        )
        if dry_run:
            return Planned(**vars(facts), request=_as_sent(plan))
        started = time.perf_counter()
        try:
            answered = await self._lanes.deliver(
                phone.id, lambda: self._send(plan), deadline=deadline
            )
            result = _judge(command, facts, answered.answer, answered.latency_ms)
        except RemoteError as exc:
            exc.context.update(vars(facts))
            if isinstance(exc, PhoneTimeout) and exc.late is not None:
                exc.late = _judged_later(exc.late, command, facts, started, change)
            log.warning(
                "%s to phone %s over %s failed: %s",
                command.spec.name,
                phone.id,
                plan.carrier.upper(),
                exc.detail,
            )
            raise
        return Completed(result=result, change=change)

    def _send(self, plan: Plan) -> Coroutine[Any, Any, Answer]:
        if isinstance(plan, SipPlan):
            return self._sip.send(plan.request)
        assert self._http is not None, "checked before the lane"
        return self._http.send(plan.exchange)


def _as_sent(plan: Plan) -> dict[str, Any]:
    """What a plan puts on the wire, for a dry run (no secrets: credentials are added by the
    senders, after planning)."""
    if isinstance(plan, SipPlan):
        request = plan.request
        return {
            "method": request.method,
            "request_uri": request.target_uri,
            "proxy": request.proxy,
            "headers": dict(request.headers),
            "content_type": request.content_type,
            "body": request.body.decode("utf-8", "replace"),
        }
    exchange = plan.exchange
    return {
        "method": exchange.method,
        "url": exchange.url,
        "query": dict(exchange.query),
        "content_type": exchange.content_type if exchange.body else None,
        "body": exchange.body.decode("utf-8", "replace") if exchange.body else None,
    }


def _judge(
    command: catalog.Command, facts: _Facts, answer: Answer, latency_ms: float
) -> CommandResult:
    """The phone's answer read by `outcome.py`: a result, or the RemoteError it means."""
    if isinstance(answer, HttpAnswer):
        outcome = accept_http_answer(answer)
        log.info(
            "%s to phone %s over HTTP: %d (Poly %s) in %.1f ms",
            command.spec.name,
            facts.phone,
            outcome.http_status,
            outcome.poly_status,
            latency_ms,
        )
        return CommandResult(
            **vars(facts),
            sip_status=None,
            sip_reason=None,
            latency_ms=round(latency_ms, 3),
            http_status=outcome.http_status,
            poly_status=outcome.poly_status,
            poly_meaning=outcome.poly_meaning,
            data=outcome.data,
        )
    answer = accept_sip_answer(answer)
    log.info(
        "%s to phone %s: %d %s in %.1f ms",
        command.spec.name,
        facts.phone,
        answer.status,
        answer.reason,
        latency_ms,
    )
    return CommandResult(
        **vars(facts),
        sip_status=answer.status,
        sip_reason=answer.reason,
        latency_ms=round(latency_ms, 3),
    )


def _judged_later(
    flight: asyncio.Future[Any],
    command: catalog.Command,
    facts: _Facts,
    started: float,
    change: StateChange | None,
) -> asyncio.Future[Completed]:
    """The late answer of a command whose caller got 504, judged like an answer in time."""
    judged: asyncio.Future[Completed] = asyncio.get_running_loop().create_future()

    def judge(done: asyncio.Future[Any]) -> None:
        try:
            latency_ms = (time.perf_counter() - started) * 1000
            result = _judge(command, facts, done.result(), latency_ms)
            judged.set_result(Completed(result=result, change=change))
        except SipBridgeError as exc:
            exc.context.update(vars(facts))
            judged.set_exception(exc)
        except BaseException as exc:  # a cancelled flight or a sender's bug: still an ending
            failure = PhoneUnreachable(f"the command's transaction failed: {exc!r}")
            failure.context.update(vars(facts))
            judged.set_exception(failure)

    flight.add_done_callback(judge)
    # Whoever is told about it (the journal) reads the outcome; nobody else has to.
    judged.add_done_callback(lambda done: done.cancelled() or done.exception())
    return judged


def _validate_body(model: type[ActionBody], body: Mapping[str, Any]) -> ActionBody:
    try:
        return model.model_validate(dict(body))
    except ValidationError as exc:
        raise InvalidInput(catalog.problems_from_validation(exc)) from exc
