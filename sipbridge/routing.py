"""Which transport carries a command to a phone (sans-I/O): SIP NOTIFY or the phone's HTTP API.

    auto  call control (the catalog's `notify_in_auto`) goes over SIP where the phone takes
          REST over SIP (UCS 6.4.2+ / PVOS 8.0+, manual 002); everything else, and every
          command to a phone without REST over SIP, goes over HTTP; warmTransfer only ever
          over SIP.
    sip / http  forced by the request; refused (422, saying why) where it cannot work. Other
          commands than call control go in a NOTIFY only where the phone's profile says its
          firmware takes them (`management_over_sip_since`); manual 002 shows call control only.

A phone no profile knows gets call control over SIP and the rest over HTTP, unchecked.
"""

from __future__ import annotations

from typing import Literal

from sipbridge import catalog
from sipbridge.catalog import CommandSpec, format_version
from sipbridge.errors import NotSupportedByPhone, TransportUnavailable
from sipbridge.phone_access import DEFAULT_USER, PhoneAccessBook
from sipbridge.phone_http import HttpExchange, PhoneEndpoint
from sipbridge.profiles import AuthMethod, Capabilities, ProfileBook
from sipbridge.sip.action_uri import SipCredentials
from sipbridge.sip.uri import parse_uri, uri_host
from sipbridge.tracker import Phone

Transport = Literal["sip", "http"]
Requested = Literal["auto", "sip", "http"]
REQUESTED: tuple[Requested, ...] = ("auto", "sip", "http")


def choose_transport(
    spec: CommandSpec, capabilities: Capabilities | None, requested: Requested = "auto"
) -> Transport:
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


class PhoneRoutes:
    """Everything a command needs to leave for one phone by HTTP, decided without I/O: the
    phone's capabilities (pinned profile or User-Agent), the transport, the request."""

    def __init__(
        self,
        profiles: ProfileBook,
        access: PhoneAccessBook,
        *,
        scheme: Literal["http", "https"] = "https",
        port: int | None = None,
    ) -> None:
        self.profiles = profiles
        self._access = access
        self._scheme = scheme
        self._port = port

    def sip_credentials(self, phone_id: str) -> SipCredentials | None:
        """What answers a digest challenge to a NOTIFY to this phone (phone_credentials_file:
        sip_user, default the phone's id, and sip_password); None when none is configured."""
        entry = self._access.for_phone(phone_id)
        if entry.sip_password is None:
            return None
        return SipCredentials(
            user=entry.sip_user or phone_id, password=entry.sip_password.get_secret_value()
        )

    def capabilities(self, phone: Phone) -> Capabilities | None:
        return self.profiles.resolve(pinned=phone.profile, user_agent=phone.user_agent)

    def exchange(
        self, phone: Phone, command: catalog.Command, capabilities: Capabilities | None
    ) -> HttpExchange:
        """The HTTP request for `command`; 422 when sipbridge has no password for the phone."""
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
            target_uri=endpoint.base_url + call.path,
            method=call.method,
            headers=(),
            content_type="application/json",
            body=call.body or b"",
            endpoint=endpoint,
            query=tuple(call.query.items()),
        )

    def _url_of(self, phone: Phone) -> str:
        host = uri_host(parse_uri(phone.contact).host)
        port = f":{self._port}" if self._port else ""
        return f"{self._scheme}://{host}{port}"
