"""Compose the NOTIFY that carries one Poly REST command (sans-I/O).

Manual 002, "Delivering REST API Commands Over SIP": a NOTIFY with `Event: ACTION-URI`,
`Content-Type: application/json` and exactly one command in the body. The Request-URI is the
phone's registered contact. pjsua adds no Contact to an out-of-dialog request, so one is added
here: it points at sipbridge so that a phone's later reports (Edge E sends INFO) come back to us.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from sipbridge.sip import uri as sip_uri
from sipbridge.sip.uri import SipUri, parse_uri

EVENT = "ACTION-URI"
CONTENT_TYPE = "application/json"


@dataclass(frozen=True, kw_only=True)
class SipCredentials:
    """What answers a phone's (or a proxy's) digest challenge to our request (RFC 3261 §22)."""

    user: str
    password: str = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class OutgoingRequest:
    """Everything the UA needs to put one out-of-dialog request on the wire."""

    target_uri: str
    headers: tuple[tuple[str, str], ...]
    content_type: str
    body: bytes
    method: str = "NOTIFY"
    proxy: str | None = None  # an outbound proxy to route through (loose, `;lr`)
    # Answer one 401/407 with these (sipbridge.sip.challenge); None: a challenge is final.
    credentials: SipCredentials | None = None
    # The host name the next hop's TLS certificate must carry (RFC 5922 §7), set when
    # sipbridge resolved that name to the address now in the URI (sipbridge.sip.resolver).
    tls_name: str | None = None


@dataclass(frozen=True, kw_only=True)
class SipAnswer:
    """How a NOTIFY transaction ended.

    `from_wire` is False when the UA made the status up itself (408 on Timer F, 503 when no
    transport could reach the phone); only a status from the wire is the phone's own answer.
    `transport_failed` marks the made-up answers of RFC 3263 §4.3's "transport failure" (a
    connection refused or reset, a TLS handshake or check that failed, a send the socket
    refused): the request may go to the next target. A timeout is not one of them.
    """

    status: int
    reason: str
    from_wire: bool
    raw: str | None = None
    transport_failed: bool = False


# Every command to a phone derives the same Request-URI from the same contact: parse it once
# (parsing and printing the URIs was a visible share of a command's CPU, docs/performance.md).
_URI_CACHE = 8192


@lru_cache(maxsize=_URI_CACHE)
def request_uri(contact: str, transport: str | None) -> str:
    """The Request-URI for a phone: its contact, with the transport it registered over.

    RFC 3263 §4.1 picks UDP for a `sip:` URI without a transport parameter, so a phone that
    registered over TCP needs `;transport=tcp` added or the NOTIFY would go out over UDP.
    """
    uri = parse_uri(contact)
    wanted = (transport or "udp").lower()
    if uri.transport is None and wanted != "udp" and uri.scheme == "sip":
        return f"{_without_headers(uri)};transport={wanted}"
    return _without_headers(uri)


def next_hop_transport(request: OutgoingRequest) -> str:
    """udp, tcp or tls: how the request leaves (through its outbound proxy, if any)."""
    return sip_uri.next_hop_transport(request.proxy or request.target_uri)


def _without_headers(uri: SipUri) -> str:
    # RFC 3261 §19.1.5: URI headers (?...) are not allowed in a Request-URI.
    text = str(uri)
    return text.split("?", 1)[0]


@lru_cache(maxsize=_URI_CACHE)
def _contact_header(local_contact: str) -> str:
    return f"<{parse_uri(local_contact)}>"


@lru_cache(maxsize=16)
def loose_route(proxy: str | None) -> str | None:
    """The outbound proxy as a loose route (RFC 3261 §8.1.2), for the UA's route set."""
    if proxy is None:
        return None
    uri = parse_uri(proxy)
    text = str(uri).split("?", 1)[0]
    if not uri.has_param("lr"):
        text += ";lr"  # §16.12: a strict route would rewrite our Request-URI
    return text


def compose(
    *,
    contact: str,
    transport: str | None,
    body: bytes,
    local_contact: str,
    outbound_proxy: str | None = None,
    credentials: SipCredentials | None = None,
) -> OutgoingRequest:
    """Build the NOTIFY for one encoded command (see `sipbridge.catalog.encode`)."""
    return OutgoingRequest(
        target_uri=request_uri(contact, transport),
        headers=(
            ("Event", EVENT),
            ("Contact", _contact_header(local_contact)),
        ),
        content_type=CONTENT_TYPE,
        body=body,
        proxy=loose_route(outbound_proxy),
        credentials=credentials,
    )
