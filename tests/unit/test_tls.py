"""The TLS settings block and the start-time checks of its files (sipbridge/tls.py)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from sipbridge.config import Settings
from sipbridge.errors import StartupError
from sipbridge.tls import peer_names_match, server_context, sip_tls
from tests.certs import make_authority


@pytest.fixture
def ca(tmp_path):
    return make_authority(tmp_path / "pki")


def test_server_context_takes_a_matching_pair_and_floors_tls_1_2(ca):
    ours = ca.issue("sipbridge")
    context = server_context(ours.cert_file, ours.key_file, names="tls_cert_file/tls_key_file")
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_a_key_of_another_certificate_is_refused_by_name(ca):
    ours, other = ca.issue("sipbridge"), ca.issue("other")
    with pytest.raises(StartupError, match=r"tls_cert_file/tls_key_file: the key .* does not match"):
        server_context(ours.cert_file, other.key_file, names="tls_cert_file/tls_key_file")


def test_missing_files_name_their_setting(ca, tmp_path):
    ours = ca.issue("sipbridge")
    with pytest.raises(StartupError, match=r"tls_key_file: cannot read .*missing\.key"):
        server_context(ours.cert_file, tmp_path / "missing.key", names="tls_cert_file/tls_key_file")
    with pytest.raises(StartupError, match=r"tls_cert_file: cannot read .*missing\.crt"):
        server_context(tmp_path / "missing.crt", ours.key_file, names="tls_cert_file/tls_key_file")


def test_a_certificate_that_is_not_pem_is_refused(ca, tmp_path):
    ours = ca.issue("sipbridge")
    junk = tmp_path / "junk.crt"
    junk.write_text("not a certificate\n")
    with pytest.raises(StartupError, match="not a PEM certificate chain"):
        server_context(junk, ours.key_file, names="tls_cert_file/tls_key_file")


def test_a_world_readable_key_is_refused_a_group_readable_one_is_not(ca):
    ours = ca.issue("sipbridge")
    ours.key_file.chmod(0o644)
    with pytest.raises(StartupError, match=r"readable by every user \(mode 644\); chmod 600"):
        server_context(ours.cert_file, ours.key_file, names="tls_cert_file/tls_key_file")
    ours.key_file.chmod(0o640)
    server_context(ours.cert_file, ours.key_file, names="tls_cert_file/tls_key_file")


def test_sip_tls_checks_the_trust_store_and_defaults_to_the_system_one(ca, tmp_path):
    checked = sip_tls(port=0, cert_file=None, key_file=None, ca_file=ca.cert_file, verify_peers=True)
    assert checked.ca_file == ca.cert_file
    system = sip_tls(port=0, cert_file=None, key_file=None, ca_file=None, verify_peers=True)
    assert system.ca_file is not None and system.ca_file.is_file()
    junk = tmp_path / "junk.pem"
    junk.write_text("junk\n")
    with pytest.raises(StartupError, match="tls_ca_file: cannot load"):
        sip_tls(port=0, cert_file=None, key_file=None, ca_file=junk, verify_peers=True)
    unverified = sip_tls(port=0, cert_file=None, key_file=None, ca_file=junk, verify_peers=False)
    assert unverified.ca_file is None


def test_sip_tls_checks_our_client_certificate_too(ca):
    ours, other = ca.issue("sipbridge"), ca.issue("other")
    with pytest.raises(StartupError, match="does not match"):
        sip_tls(port=0, cert_file=ours.cert_file, key_file=other.key_file, ca_file=None,
                verify_peers=False)  # fmt: skip


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"tls_cert_file": "a.crt"}, "tls_cert_file and tls_key_file go together"),
        ({"http_tls": True}, "http_tls needs tls_cert_file"),
        ({"listen_tls_port": 5063}, "listen_tls_port needs tls_cert_file"),
        (
            {"http_tls_cert_file": "h.crt", "http_tls_key_file": "h.key"},
            "http_tls is off: set http_tls = true",
        ),
        ({"sip_port": 5070, "sip_tls_port": 5071, "workers": 2}, "overlaps sip_port"),
    ],
)
def test_settings_that_cannot_work_are_refused(values, message, tmp_path):
    with pytest.raises(ValidationError, match=message):
        Settings(data_dir=tmp_path, **values)


def test_https_reads_the_shared_files_unless_given_its_own(tmp_path):
    shared = Settings(
        data_dir=tmp_path, tls_cert_file=Path("s.crt"), tls_key_file=Path("s.key"), http_tls=True
    )
    assert shared.http_tls_files == (shared.tls_cert_file, shared.tls_key_file)
    own = shared.model_copy(
        update={"http_tls_cert_file": Path("h.crt"), "http_tls_key_file": Path("h.key")}
    )
    assert own.http_tls_files == (own.http_tls_cert_file, own.http_tls_key_file)


def test_http_tls_environment_names(monkeypatch, tmp_path):
    monkeypatch.setenv("SIPBRIDGE_HTTP_TLS", "true")
    monkeypatch.setenv("SIPBRIDGE_HTTP_TLS_CERT_FILE", "/etc/h.crt")
    monkeypatch.setenv("SIPBRIDGE_HTTP_TLS_KEY_FILE", "/etc/h.key")
    settings = Settings(data_dir=tmp_path)
    assert settings.http_tls_files is not None
    assert [str(p) for p in settings.http_tls_files] == ["/etc/h.crt", "/etc/h.key"]


def test_workers_get_their_own_tls_port(tmp_path):
    settings = Settings(data_dir=tmp_path, sip_port=5070, sip_tls_port=5080, workers=3)
    assert (settings.for_worker(2).sip_port, settings.for_worker(2).sip_tls_port) == (5072, 5082)


def _peer(*alt_names: tuple[str, str], cn: str = "leaf") -> dict[str, object]:
    """A verified peer certificate as `SSLSocket.getpeercert()` gives it."""
    peer: dict[str, object] = {"subject": ((("commonName", cn),),)}
    if alt_names:
        peer["subjectAltName"] = alt_names
    return peer


@pytest.mark.parametrize(
    ("peer", "name", "matches"),
    [
        (_peer(("DNS", "phone.test")), "phone.test", True),
        (_peer(("DNS", "Phone.Test.")), "phone.test", True),  # case-blind, root dot ignored
        (_peer(("DNS", "other.test")), "phone.test", False),
        (_peer(("URI", "sip:phone.test")), "phone.test", True),  # RFC 5922 §7.1
        (_peer(("URI", "sip:1001@phone.test")), "phone.test", False),  # a user, not a domain
        (_peer(("URI", "https://phone.test/")), "phone.test", False),
        (_peer(("DNS", "*.test")), "phone.test", False),  # §7.2: no wildcards
        (_peer(("IP Address", "127.0.0.1")), "phone.test", False),
        (_peer(cn="phone.test"), "phone.test", True),  # CN only without subjectAltName
        (_peer(("DNS", "other.test"), cn="phone.test"), "phone.test", False),
        (_peer(("IP Address", "127.0.0.1")), "127.0.0.1", True),
        (_peer(("IP Address", "::1")), "[::1]", True),
        (_peer(("DNS", "127.0.0.1")), "127.0.0.1", False),
        ({}, "phone.test", False),
    ],
)
def test_peer_names_match_by_rfc_5922(peer, name, matches):
    assert peer_names_match(peer, name) is matches
