"""When a configured TLS certificate expires (the alarm rules warn 30 days ahead)."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from sipbridge.errors import StartupError


def not_after(path: Path) -> float:
    """The notAfter of the first certificate in the PEM file `path`, in epoch seconds."""
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise StartupError(f"cannot read the certificate in {path}: {exc}") from exc
    return certificate.not_valid_after_utc.timestamp()
