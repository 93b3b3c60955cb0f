"""Suite-wide guards."""

import pytest


@pytest.fixture(autouse=True)
def _dns_stays_on_loopback(monkeypatch):
    """Tests send traffic only to loopback: a contact with a host name must never reach the
    machine's own nameservers (/etc/resolv.conf). Port 1 on loopback has no DNS server, so such
    a lookup fails at once; tests that need DNS give `dns_nameservers` of their own servers."""
    monkeypatch.setenv("SIPBRIDGE_DNS_NAMESERVERS", "127.0.0.1:1")
