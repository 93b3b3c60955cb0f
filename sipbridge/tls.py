"""TLS for sipbridge's three uses, from one settings block (config.py, "TLS").

The SIP user agent (to `sips:` / `;transport=tls` phones), the SIP listener over TLS and HTTPS on
the front API take their certificate, key and trust store from the same files, checked here once
at start so that a missing file, a key that does not match its certificate or a key others can
read stops the service with a sentence, not a traceback from OpenSSL in the middle of a
handshake. TLS 1.2 is the floor everywhere (RFC 8996 retired 1.0 and 1.1; RFC 5630 §3 wants TLS
on every SIPS hop). The pjsua2 wheel bundles OpenSSL 1.0.2, so the user agent speaks 1.2 only;
the listener and HTTPS (the stdlib's OpenSSL) take 1.2 and 1.3.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path

from sipbridge.errors import StartupError

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


@dataclass(frozen=True, kw_only=True)
class SipTls:
    """What the SIP user agent's TLS transport needs, checked (see `sip_tls`)."""

    port: int
    cert_file: Path | None  # None: no client certificate, and incoming TLS is refused
    key_file: Path | None
    ca_file: Path | None  # None only when verify_peers is off
    verify_peers: bool


def server_context(cert_file: Path, key_file: Path, *, names: str) -> ssl.SSLContext:
    """A server context (TLS 1.2+) for the listener or HTTPS; `names` the settings, for errors.

    Clients are not asked for a certificate: phones registering over TLS authenticate with
    digest (register_credentials_file) and the allowlist, API clients with their key.
    """
    check_key_file(key_file, setting=names.split("/")[-1])
    _readable(cert_file, setting=names.split("/")[0])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    try:
        context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise StartupError(f"{names}: the key {key_file} does not match {cert_file}") from exc
        raise StartupError(
            f"{names}: {cert_file} / {key_file} are not a PEM certificate chain and its "
            f"unencrypted key ({exc.reason or exc})"
        ) from exc
    return context


def sip_tls(
    *,
    port: int,
    cert_file: Path | None,
    key_file: Path | None,
    ca_file: Path | None,
    verify_peers: bool,
) -> SipTls:
    """The user agent's TLS settings, checked with the stdlib first (pjsip's errors say little)."""
    if cert_file is not None and key_file is not None:
        server_context(cert_file, key_file, names="tls_cert_file/tls_key_file")
    trust = None
    if verify_peers:
        trust = ca_file or system_trust_store()
        try:
            ssl.create_default_context(cafile=str(trust))
        except (OSError, ssl.SSLError) as exc:
            raise StartupError(f"tls_ca_file: cannot load {trust} as PEM CAs: {exc}") from exc
    return SipTls(
        port=port, cert_file=cert_file, key_file=key_file, ca_file=trust, verify_peers=verify_peers
    )


def client_context(tls: SipTls) -> ssl.SSLContext:
    """The context sipbridge's own SIP stack connects to TLS phones with (TLS 1.2+), from the
    same files as the user agent's. The chain is checked by OpenSSL; the name is checked by
    `peer_names_match` after the handshake (RFC 5922 is not RFC 6125: see there)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = MINIMUM_VERSION
    context.check_hostname = False  # our own RFC 5922 §7 check instead, before any byte is sent
    if tls.verify_peers:
        assert tls.ca_file is not None  # sip_tls() fills it when verifying
        context.load_verify_locations(cafile=str(tls.ca_file))
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.verify_mode = ssl.CERT_NONE
    if tls.cert_file is not None and tls.key_file is not None:
        context.load_cert_chain(tls.cert_file, tls.key_file)  # for phones that ask (mutual TLS)
    return context


def peer_names_match(peer: dict[str, object], name: str) -> bool:
    """Whether a verified peer certificate (`SSLSocket.getpeercert()`) is for `name`.

    RFC 5922 §7.1: a SIP domain's identities are the subjectAltName URIs `sip:domain` (no user
    part) and its dNSNames; the Common Name counts only in a certificate with no subjectAltName.
    §7.2: compared case-blind, and a wildcard never matches (RFC 6125's `*.example.com` does
    not apply to SIP). An IP address (a numeric contact) matches an iPAddress entry.
    """
    wanted = name.lower().rstrip(".")
    try:
        address = ipaddress.ip_address(wanted.strip("[]"))
    except ValueError:
        address = None
    alt_names = peer.get("subjectAltName")
    entries = [e for e in alt_names if isinstance(e, tuple)] if isinstance(alt_names, tuple) else []
    if address is not None:
        return any(
            kind == "IP Address" and _same_address(str(value), address) for kind, value in entries
        )
    identities = []
    for kind, value in entries:
        text = str(value).lower()
        if kind == "DNS":
            identities.append(text.rstrip("."))
        elif kind == "URI" and text.startswith("sip:") and "@" not in text:
            identities.append(text[4:].split(";", 1)[0].rstrip("."))
    if not entries:
        identities = [str(value).lower() for value in _common_names(peer)]
    return wanted in identities


def _same_address(text: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(text.strip()) == address
    except ValueError:
        return False


def _common_names(peer: dict[str, object]) -> list[object]:
    subject = peer.get("subject")
    if not isinstance(subject, tuple):
        return []
    return [
        value
        for rdn in subject
        if isinstance(rdn, tuple)
        for pair in rdn
        if isinstance(pair, tuple) and len(pair) == 2
        for key, value in [pair]
        if key == "commonName"
    ]


def system_trust_store() -> Path:
    """The system's CA bundle. pjsip's bundled OpenSSL does not know Debian's paths, so it is
    handed the file the stdlib would use (SSL_CERT_FILE honoured)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (os.environ.get(paths.openssl_cafile_env), paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise StartupError(
        "no system CA bundle found for verifying phones: set tls_ca_file "
        "(or tls_verify_phones = false on a trusted network)"
    )


def check_key_file(path: Path, *, setting: str) -> None:
    """Refuse a private key that every local user can read (or write).

    Group-readable stays allowed: Debian's convention is a key 0640 root:ssl-cert. On
    Kubernetes, mount the secret with `defaultMode: 0440` (its default 0644 is refused).
    """
    _readable(path, setting=setting)
    mode = path.stat().st_mode
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        raise StartupError(
            f"{setting}: {path} is readable by every user (mode {stat.S_IMODE(mode):o}); "
            f"chmod 600 (or 640 with a group) it"
        )


def _readable(path: Path, *, setting: str) -> None:
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise StartupError(f"{setting}: cannot read {path}: {exc.strerror}") from exc
