"""Event package bodies, sans-I/O: dialog-info (RFC 4235) and reginfo (RFC 3680).

Bodies come from the network, so XML is parsed with defusedxml (no entity expansion, no external
references) and anything that is not the expected document is an `EventBodyError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from sipbridge.tracker.models import CallState

DIALOG_NS = "urn:ietf:params:xml:ns:dialog-info"
REGINFO_NS = "urn:ietf:params:xml:ns:reginfo"
DIALOG_INFO_TYPE = "application/dialog-info+xml"
REGINFO_TYPE = "application/reginfo+xml"
MAX_BODY = 256 * 1024


class EventBodyError(ValueError):
    """The body is not a well-formed document of the expected event package."""


@dataclass(frozen=True, kw_only=True)
class DialogEvent:
    """One <dialog> of a dialog-info document."""

    dialog_id: str
    call_id: str | None
    local_tag: str | None
    remote_tag: str | None
    direction: Literal["initiator", "recipient"] | None
    state: str  # trying, proceeding, early, confirmed, terminated (§4.1.2)
    remote_identity: str | None
    held: bool

    def call_state(self) -> CallState | None:
        """The tracker's view: None when the dialog is over."""
        if self.state == "terminated":
            return None
        if self.state == "confirmed":
            return "held" if self.held else "connected"
        return "ringing"


@dataclass(frozen=True, kw_only=True)
class DialogInfo:
    version: int
    full: bool  # state="full": dialogs not listed are gone (§4.1)
    entity: str
    dialogs: tuple[DialogEvent, ...]


@dataclass(frozen=True, kw_only=True)
class ContactEvent:
    uri: str
    state: Literal["active", "terminated"]
    event: str | None
    expires: int | None


@dataclass(frozen=True, kw_only=True)
class RegistrationEvent:
    aor: str
    state: str  # init, active, terminated (§5.1)
    contacts: tuple[ContactEvent, ...]


@dataclass(frozen=True, kw_only=True)
class RegInfo:
    version: int
    full: bool
    registrations: tuple[RegistrationEvent, ...]


def _root(body: bytes, namespace: str, name: str) -> Element:
    if len(body) > MAX_BODY:
        raise EventBodyError("body too large")
    try:
        root = ElementTree.fromstring(body)
    except (ElementTree.ParseError, DefusedXmlException, ValueError) as exc:
        raise EventBodyError(f"not well-formed XML: {exc}") from exc
    if root.tag != f"{{{namespace}}}{name}":
        raise EventBodyError(f"expected <{name}> in {namespace}, got {root.tag}")
    return root


def _int(value: str | None, what: str) -> int:
    if value is None or not value.strip().isdigit():
        raise EventBodyError(f"{what} must be a non-negative integer")
    return int(value)


def _text(element: Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    return element.text.strip() or None


def parse_dialog_info(body: bytes) -> DialogInfo:
    root = _root(body, DIALOG_NS, "dialog-info")
    ns = {"d": DIALOG_NS}
    dialogs = []
    for dialog in root.findall("d:dialog", ns):
        dialog_id = dialog.get("id")
        state = _text(dialog.find("d:state", ns))
        if not dialog_id or state is None:
            raise EventBodyError("a <dialog> needs an id and a <state>")
        direction = dialog.get("direction")
        # §4.1.6.2: a +sip.rendering="no" target parameter says the local side holds the call.
        held = any(
            param.get("pname") == "+sip.rendering" and param.get("pval") == "no"
            for param in dialog.findall("d:local/d:target/d:param", ns)
        )
        dialogs.append(
            DialogEvent(
                dialog_id=dialog_id,
                call_id=dialog.get("call-id"),
                local_tag=dialog.get("local-tag"),
                remote_tag=dialog.get("remote-tag"),
                direction=direction if direction in ("initiator", "recipient") else None,  # type: ignore[arg-type]
                state=state.lower(),
                remote_identity=_text(dialog.find("d:remote/d:identity", ns)),
                held=held,
            )
        )
    return DialogInfo(
        version=_int(root.get("version"), "version"),
        full=_state_is_full(root),
        entity=root.get("entity") or "",
        dialogs=tuple(dialogs),
    )


def parse_reginfo(body: bytes) -> RegInfo:
    root = _root(body, REGINFO_NS, "reginfo")
    ns = {"r": REGINFO_NS}
    registrations = []
    for registration in root.findall("r:registration", ns):
        aor = registration.get("aor")
        if not aor:
            raise EventBodyError("a <registration> needs an aor")
        contacts = []
        for contact in registration.findall("r:contact", ns):
            uri = _text(contact.find("r:uri", ns))
            state = contact.get("state")
            if uri is None or state not in ("active", "terminated"):
                raise EventBodyError("a <contact> needs a <uri> and state active|terminated")
            expires = contact.get("expires")
            contacts.append(
                ContactEvent(
                    uri=uri,
                    state=state,  # type: ignore[arg-type]
                    event=contact.get("event"),
                    expires=None if expires is None else _int(expires, "expires"),
                )
            )
        registrations.append(
            RegistrationEvent(
                aor=aor, state=registration.get("state") or "active", contacts=tuple(contacts)
            )
        )
    return RegInfo(
        version=_int(root.get("version"), "version"),
        full=_state_is_full(root),
        registrations=tuple(registrations),
    )


def _state_is_full(root: Element) -> bool:
    state = root.get("state")
    if state not in ("full", "partial"):
        raise EventBodyError("state must be full or partial")
    return state == "full"
