"""How a command leaves for its phone, decided once and without I/O: the plan.

    auto  call control (the catalog's `notify_in_auto`) goes over SIP where the phone takes
          REST over SIP (UCS 6.4.2+ / PVOS 8.0+, manual 002); everything else, and every
          command to a phone without REST over SIP, goes over HTTP; warmTransfer only ever
          over SIP.
    sip / http  forced by the request; refused (422, saying why) where it cannot work. Other
          commands than call control go in a NOTIFY only where the phone's profile says its
          firmware takes them (`management_over_sip_since`); manual 002 shows call control only.

A phone no profile knows gets call control over SIP and the rest over HTTP, unchecked.
Everything that can refuse a command (profile, carrier, Ref, size, TLS, credentials) is
checked here, before the command is queued.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sipbridge import catalog
from sipbridge.catalog import CommandSpec, format_version
from sipbridge.errors import NotSupportedByPhone, PayloadTooLarge, TransportUnavailable
from sipbridge.phone.access import DEFAULT_USER, PhoneAccessBook
from sipbridge.phone.http import HttpExchange, PhoneEndpoint
from sipbridge.phone.profiles import AuthMethod, Capabilities, ProfileBook
from sipbridge.sip import action_uri
from sipbridge.sip.action_uri import OutgoingRequest, SipCredentials
from sipbridge.sip.uri import parse_uri, uri_host
from sipbridge.tracker import Phone

# What carries a command to the phone (the `transport` of the API: ?transport=, the answer's
# field); not to be confused with a SIP transport (udp, tcp, tls).
Carrier = Literal["sip", "http"]
Requested = Literal["auto", "sip", "http"]
REQUESTED: tuple[Requested, ...] = ("auto", "sip", "http")


@dataclass(frozen=True, kw_only=True)
class SipPlan:
    """The command as an ACTION-URI NOTIFY, for the SIP user agent."""

    request: OutgoingRequest
    carrier: Literal["sip"] = "sip"


@dataclass(frozen=True, kw_only=True)
class HttpPlan:
    """The command as a call of the phone's REST API, for the phone HTTP client."""

    exchange: HttpExchange
    carrier: Literal["http"] = "http"


Plan = SipPlan | HttpPlan


def choose_transport(
    spec: CommandSpec, capabilities: Capabilities | None, requested: Requested = "auto"
) -> Carrier:
    """The transport for `spec` on this phone, or NotSupportedByPhone / TransportUnavailable."""
    if capabilities is not None:
        why = capabilities.lacks(spec)
        if why:
            raise NotSupportedByPhone.one("command_uri", why)
    no_sip = _why_no_sip(capabilities)
    if requested == "http":
        if spec.sip_only:
            raise TransportUnavailable.one(
                "transport",
                f"{spec.name} is SIP-only: Poly phones run it only from an ACTION-URI NOTIFY, "
                "never from their web server (manual 002)",
            )
        return "http"
    if requested == "sip" and spec.http_only:
        raise TransportUnavailable.one(
            "transport",
            f"{spec.name} cannot go over SIP: "
            + (
                "it answers with data, and the answer to a NOTIFY is only a SIP status"
                if spec.output_model is not None
                else "its data must not travel in a SIP message"
            ),
        )
    if requested == "sip" or spec.sip_only:
        if no_sip:
            raise TransportUnavailable.one("transport", no_sip)
        if not spec.notify_in_auto and not (capabilities and capabilities.management_over_sip):
            raise TransportUnavailable.one(
                "transport",
                f"{spec.name} goes over HTTP: manual 002 shows REST over SIP for call control "
                "only; a profile whose firmware takes it in a NOTIFY says so with "
                "management_over_sip_since (docs/profiles.md)",
            )
        return "sip"
    if spec.http_only or no_sip or not spec.notify_in_auto:
        return "http"
    return "sip"


def _why_no_sip(capabilities: Capabilities | None) -> str | None:
    if capabilities is None or capabilities.rest_over_sip:
        return None
    profile = capabilities.profile
    where = f"{profile.title} (firmware {capabilities.version_text})"
    if not profile.rest_api:
        return f"{where} has no REST API"
    if profile.rest_over_sip_since is None:
        return f"{where} takes no REST commands over SIP"
    since = format_version(profile.rest_over_sip_since)
    return f"{where} takes REST commands over SIP only from firmware {since}"


def refs_call_id(capabilities: Capabilities | None, data: dict[str, str]) -> None:
    """Ref by SIP Call-ID needs UCS 6.4.2 / PVOS 8.0; before, only the phone's call handle."""
    if capabilities is None or capabilities.call_id_as_ref:
        return
    if not {"Ref", "Ref-A", "Ref-B"} & set(data):
        return
    raise NotSupportedByPhone.one(
        "call_id",
        f"{capabilities.profile.title} (firmware {capabilities.version_text}) takes only its own "
        "call handles as Ref, not SIP Call-IDs (UCS 6.4.2 / PVOS 8.0 and later do); find the "
        "handle with callStatusV2 and send the command with POST /v1/phones/{phone}/commands",
    )


class Planner:
    """Plans each command for one phone: its capabilities (pinned profile or User-Agent), the
    carrier, and the NOTIFY or REST call itself.

    Without profiles every phone is taken as SIP-capable with no profile checks; without the
    phone credentials there is no HTTP carrier.
    """

    def __init__(
        self,
        *,
        reports_contact: str,
        profiles: ProfileBook | None = None,
        access: PhoneAccessBook | None = None,
        scheme: Literal["http", "https"] = "https",
        port: int | None = None,
        outbound_proxy: str | None = None,
        sip_over_tls: bool = True,
        reports_contact_tls: str | None = None,
    ) -> None:
        self.profiles = profiles
        self._access = access
        self._scheme = scheme
        self._port = port
        # The NOTIFY's Contact: sipbridge's listener when it runs, so a phone's reports about a
        # command (Edge E sends them as INFO, DESIGN.md) reach it; else the UA itself.
        self._reports_contact = reports_contact
        # The listener over TLS, for phones reached over TLS: their reports come back the same
        # way, and a sips: Request-URI wants a sips: Contact (RFC 3261 §8.1.1.8).
        self._reports_contact_tls = reports_contact_tls
        self._outbound_proxy = outbound_proxy
        # False when the UA has no TLS transport (sip_tls_port unset): sips: phones get a 422.
        self._sip_over_tls = sip_over_tls

    def capabilities(self, phone: Phone) -> Capabilities | None:
        if self.profiles is None:
            return None
        return self.profiles.resolve(pinned=phone.profile, user_agent=phone.user_agent)

    def plan(
        self,
        phone: Phone,
        command: catalog.Command,
        *,
        requested: Requested = "auto",
        by_call_id: bool = False,
    ) -> Plan:
        """The one way `command` leaves for `phone`, or the error that says why it cannot."""
        capabilities = self.capabilities(phone)
        carrier = choose_transport(command.spec, capabilities, requested)
        if capabilities is not None:
            capabilities.refuse_data(command)  # key sets, name counts per line (docs/profiles.md)
        if by_call_id:
            refs_call_id(capabilities, command.as_json()["data"])
        if carrier == "http":
            return HttpPlan(exchange=self._exchange(phone, command, capabilities))
        return SipPlan(request=self._notify(phone, command, capabilities))

    def _notify(
        self, phone: Phone, command: catalog.Command, capabilities: Capabilities | None
    ) -> OutgoingRequest:
        body = catalog.encode(command)  # 413 over Poly's 20 KB
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
            credentials=self._sip_credentials(phone.id),
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
        return request

    def _reports_contact_for(self, phone: Phone) -> str:
        if phone.transport == "tls" and self._reports_contact_tls is not None:
            if phone.contact.lower().startswith("sips:"):
                return self._reports_contact_tls
            return self._reports_contact_tls.replace("sips:", "sip:", 1) + ";transport=tls"
        return self._reports_contact

    def _sip_credentials(self, phone_id: str) -> SipCredentials | None:
        """What answers a digest challenge to a NOTIFY to this phone (phone_credentials_file:
        sip_user, default the phone's id, and sip_password); None when none is configured."""
        if self._access is None:
            return None
        entry = self._access.for_phone(phone_id)
        if entry.sip_password is None:
            return None
        return SipCredentials(
            user=entry.sip_user or phone_id, password=entry.sip_password.get_secret_value()
        )

    def _exchange(
        self, phone: Phone, command: catalog.Command, capabilities: Capabilities | None
    ) -> HttpExchange:
        """The HTTP request for `command`; 422 when sipbridge has no password for the phone."""
        if self._access is None:
            raise TransportUnavailable.one("transport", "the phone HTTP transport is not set up")
        access = self._access.for_phone(phone.id)
        if access.password is None:
            raise TransportUnavailable.one(
                "transport",
                f"no REST API password for phone {phone.id!r}: add it (or a default) to "
                "phone_credentials_file",
            )
        call = catalog.encode_http(
            command, capabilities.profile.firmware_line if capabilities else None
        )
        auth: AuthMethod = access.auth or (
            capabilities.http_auth[0] if capabilities and capabilities.http_auth else "digest"
        )
        endpoint = PhoneEndpoint(
            phone_id=phone.id,
            base_url=(access.url or self._url_of(phone)).rstrip("/"),
            user=access.user or DEFAULT_USER,
            password=access.password,
            auth=auth,
            auth_pinned=access.auth is not None,
            session_lifetime=capabilities.profile.session_lifetime if capabilities else 1500.0,
        )
        return HttpExchange(
            url=endpoint.base_url + call.path,
            method=call.method,
            body=call.body or b"",
            endpoint=endpoint,
            query=tuple(call.query.items()),
        )

    def _url_of(self, phone: Phone) -> str:
        host = uri_host(parse_uri(phone.contact).host)
        port = f":{self._port}" if self._port else ""
        return f"{self._scheme}://{host}{port}"
