"""What the tracker learns over SIP: the `RequestRouter` behind sipbridge's listener.

* REGISTER (from phones, or copies a registrar replicates) → phone records (registrar.py).
* NOTIFY `Event: dialog` on a subscription of ours (RFC 4235) → which phone holds which Call-ID.
* NOTIFY `Event: reg` from a registrar (RFC 3680) → phone records.
(ACTION-URI NOTIFYs from a PBX never reach the feed: `pbx/router.py` sends them to the relay.)
* OPTIONS → 200 (keep-alive probes); INFO → accepted and logged (Edge E reports, DESIGN.md).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sipbridge.errors import SipBridgeError, UnknownCall
from sipbridge.sip import digest
from sipbridge.sip.listener import Reply, Source
from sipbridge.sip.message import (
    SipParseError,
    SipRequest,
    header_params,
    parse_name_addr,
    parse_uri,
)
from sipbridge.sip.networks import PhoneNetworks
from sipbridge.sip.uri import sip_transport
from sipbridge.tracker import registrar
from sipbridge.tracker.events import (
    DIALOG_INFO_TYPE,
    REGINFO_TYPE,
    DialogInfo,
    EventBodyError,
    parse_dialog_info,
    parse_reginfo,
)
from sipbridge.tracker.models import Phone
from sipbridge.tracker.store import TrackerStore
from sipbridge.tracker.subscriptions import TOKEN_PREFIX, DialogSubscriptions

log = logging.getLogger(__name__)

_OK = Reply(status=200, reason="OK")


@dataclass
class FeedStats:
    """What the feed took in, counted for the KPIs (admin/kpi.py): plain integers, bumped
    where each request is decided."""

    registers: int = 0
    bound: int = 0
    unbound: int = 0
    registers_refused: int = 0
    expired: int = 0  # counted by whoever purges expired registrations
    dialog_notifies: int = 0
    dialog_refused: int = 0
    reg_notifies: int = 0
    reg_refused: int = 0


class SipFeed:
    allowed_methods: tuple[str, ...] = ("REGISTER", "NOTIFY", "OPTIONS", "INFO", "ACK")
    events: tuple[str, ...] = ("dialog", "reg")  # the NOTIFY event packages it takes

    def __init__(
        self,
        store: TrackerStore,
        subscriptions: DialogSubscriptions | None,
        *,
        register_auth: RegisterAuth | None = None,
        networks: PhoneNetworks | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._networks = networks
        self._subscriptions = subscriptions
        self._auth = register_auth
        self._clock = clock
        self.stats = FeedStats()

    def handle(self, request: SipRequest, source: Source) -> Reply:
        if request.method == "REGISTER":
            self.stats.registers += 1
            reply = self._register(request, source)
            if reply.status >= 300:
                self.stats.registers_refused += 1
            return reply
        if request.method == "NOTIFY":
            return self._notify(request, source)
        if request.method == "INFO":
            log.info(
                "INFO from %s (%s): %s",
                source,
                request.headers.get("Content-Type") or "no body",
                request.body[:500].decode("utf-8", "replace"),
            )
            return _OK
        return Reply(status=200, reason="OK", headers=(("Allow", ", ".join(self.allowed_methods)),))

    # -- REGISTER ----------------------------------------------------------------------------

    def _register(self, request: SipRequest, source: Source) -> Reply:
        phone_id = _aor_user(request)
        if self._auth is not None:
            refused = self._auth.check(request, phone_id, self._clock())
            if refused is not None:
                return refused
        current = self._store.registration(phone_id) if phone_id else None
        decision = registrar.decide(request, current=current, now=self._clock())
        if decision.bind is not None:
            refused = self._outside_networks(decision.bind.contact, source, "REGISTER")
            if refused is not None:
                return refused
        try:
            if decision.bind is not None:
                phone = self._bind(decision.bind)
                self.stats.bound += 1
                log.info("REGISTER from %s: phone %s at %s", source, phone.id, phone.contact)
            elif decision.unbind is not None:
                self.forget_phone(decision.unbind)
                self.stats.unbound += 1
                log.info("REGISTER from %s: phone %s unregistered", source, decision.unbind)
        except SipBridgeError as exc:
            log.error("could not record a registration: %s", exc.detail)
            return Reply(
                status=500, reason="Server Internal Error", headers=(("Retry-After", "5"),)
            )
        return Reply(status=decision.status, reason=decision.reason, headers=decision.headers)

    def _outside_networks(self, contact: str, source: Source, what: str) -> Reply | None:
        """403 and an audit record for a contact whose address lies outside phone_networks
        (RFC 3261 §21.4.4: understood, refused); a name is judged when it is resolved."""
        why = self._networks.why_not_contact(contact) if self._networks is not None else None
        if why is None:
            return None
        log.warning("%s from %s refused: contact %s: %s", what, source, contact, why)
        self._store.audit(str(source), "contact-refused", f"{what} contact {contact}: {why}"[:500])
        return Reply(status=403, reason="Contact outside phone_networks")

    def _bind(self, binding: registrar.Binding) -> Phone:
        phone = self._store.register_phone(
            binding.phone_id,
            contact=binding.contact,
            transport=binding.transport,
            expires=binding.expires,
            aor=binding.aor,
            user_agent=binding.user_agent,
            learned_from="register",
            received=binding.received,
            registration_call_id=binding.call_id,
            registration_cseq=binding.cseq,
        )
        if self._subscriptions is not None:
            self._subscriptions.phone_registered(phone)
        return phone

    def forget_phone(self, phone_id: str) -> None:
        self._store.remove_phone(phone_id)
        if self._subscriptions is not None:
            self._subscriptions.phone_gone(phone_id)

    # -- NOTIFY ------------------------------------------------------------------------------

    def _notify(self, request: SipRequest, source: Source) -> Reply:
        event = header_params(request.headers.get("Event") or "")[0].strip().lower()
        if event == "dialog":
            self.stats.dialog_notifies += 1
            reply = self._dialog_notify(request)
            self.stats.dialog_refused += reply.status >= 300
            return reply
        if event == "reg":
            self.stats.reg_notifies += 1
            reply = self._reginfo_notify(request, source)
            self.stats.reg_refused += reply.status >= 300
            return reply
        # RFC 6665 §8.2.1: an event package we do not take.
        return Reply(
            status=489, reason="Bad Event", headers=(("Allow-Events", ", ".join(self.events)),)
        )

    def _dialog_notify(self, request: SipRequest) -> Reply:
        token = _request_user(request)
        subscription = (
            self._subscriptions.lookup(token)
            if self._subscriptions is not None and token.startswith(TOKEN_PREFIX)
            else None
        )
        if subscription is None:
            return Reply(status=481, reason="Subscription Does Not Exist")
        state = header_params(request.headers.get("Subscription-State") or "active")[0]
        if request.body:
            media = header_params(request.headers.get("Content-Type") or "")[0].strip().lower()
            if media != DIALOG_INFO_TYPE:
                return Reply(
                    status=415,
                    reason="Unsupported Media Type",
                    headers=(("Accept", DIALOG_INFO_TYPE),),
                )
            try:
                info = parse_dialog_info(request.body)
            except EventBodyError as exc:
                return Reply(status=400, reason=f"Bad dialog-info: {exc}"[:100])
            # §4.1: versions only go up; an older or repeated document is stale.
            if subscription.last_version is None or info.version > subscription.last_version:
                subscription.last_version = info.version
                self._apply_dialogs(subscription.phone_id, info)
        if state.strip().lower() == "terminated" and self._subscriptions is not None:
            self._subscriptions.terminated(subscription)
        return _OK

    def _apply_dialogs(self, phone_id: str, info: DialogInfo) -> None:
        seen: set[str] = set()
        for dialog in info.dialogs:
            if dialog.call_id is None:
                continue
            seen.add(dialog.call_id)
            state = dialog.call_state()
            try:
                if state is None:
                    if self._holds(phone_id, dialog.call_id):
                        self._store.remove_call(dialog.call_id)
                else:
                    self._store.record_call(dialog.call_id, phone_id=phone_id, state=state)
            except SipBridgeError as exc:
                log.warning("dialog event for phone %s not recorded: %s", phone_id, exc.detail)
        if info.full:
            # A full document lists every dialog: calls of this phone it does not list are over.
            for call in self._store.calls(phone_id=phone_id):
                if call.call_id not in seen:
                    self._store.remove_call(call.call_id)

    def _holds(self, phone_id: str, call_id: str) -> bool:
        try:
            return self._store.call(call_id).phone_id == phone_id
        except UnknownCall:
            return False

    def _reginfo_notify(self, request: SipRequest, source: Source) -> Reply:
        try:
            info = parse_reginfo(request.body)
        except EventBodyError as exc:
            return Reply(status=400, reason=f"Bad reginfo: {exc}"[:100])
        if (
            header_params(request.headers.get("Content-Type") or "")[0].strip().lower()
            != REGINFO_TYPE
        ):
            return Reply(
                status=415, reason="Unsupported Media Type", headers=(("Accept", REGINFO_TYPE),)
            )
        for registration in info.registrations:
            try:
                aor = parse_uri(registration.aor)
            except SipParseError:
                continue
            phone_id = aor.user or ""
            active = [c for c in registration.contacts if c.state == "active"]
            if registration.state == "terminated" or not active:
                if self._store.registration(phone_id) is not None:
                    self.forget_phone(phone_id)
                continue
            contact = active[-1]
            if self._outside_networks(contact.uri, source, "reginfo NOTIFY") is not None:
                continue  # one bad contact refuses that registration, not the document
            try:
                phone = self._store.register_phone(
                    phone_id,
                    contact=contact.uri,
                    transport=sip_transport(parse_uri(contact.uri)) or "udp",
                    expires=contact.expires or registrar.DEFAULT_EXPIRES,
                    aor=f"{aor.scheme}:{phone_id}@{aor.host}",
                    learned_from="reginfo",
                )
            except (SipParseError, SipBridgeError) as exc:
                log.warning("reginfo from %s for %s not recorded: %s", source, phone_id, exc)
                continue
            if self._subscriptions is not None:
                self._subscriptions.phone_registered(phone)
        return _OK


@dataclass(frozen=True, kw_only=True)
class RegisterAuth:
    """Digest credentials REGISTERs must carry (RFC 3261 §22.1), when configured."""

    realm: str
    passwords: Mapping[str, str]
    algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    def check(self, request: SipRequest, phone_id: str | None, now: float) -> Reply | None:
        """None when the REGISTER may proceed; else the 401 / 403 to answer."""
        verdict = digest.verify(
            request.headers.get("Authorization"),
            method=request.method,
            realm=self.realm,
            secret=self.secret,
            passwords=self.passwords,
            now=now,
        )
        if not verdict.ok:
            nonce = digest.make_nonce(self.secret, now)
            return Reply(
                status=401,
                reason="Unauthorized",
                headers=digest.challenges(
                    self.realm, nonce, stale=verdict.stale, algorithms=self.algorithms
                ),
            )
        if verdict.username != phone_id:
            # A phone registers itself only (RFC 3261 §10.3 step 3 leaves the policy to us).
            return Reply(status=403, reason="Forbidden")
        return None


def _aor_user(request: SipRequest) -> str | None:
    try:
        return parse_name_addr(request.headers.get("To") or "")[1].user
    except SipParseError:
        return None


def _request_user(request: SipRequest) -> str:
    try:
        return parse_uri(request.uri).user or ""
    except SipParseError:
        return ""
