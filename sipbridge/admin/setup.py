"""The first device-API user: with none yet, `admin` (Security Administrator) from
`admin_password_file` or `admin_password`; without either the device API says how (503) and
the rest of the service runs. There is never a default password."""

from __future__ import annotations

import logging

from sipbridge.config import Settings
from sipbridge.errors import Conflict, InvalidInput, StartupError
from sipbridge.levels import Level
from sipbridge.tracker.credentials import Credentials

log = logging.getLogger(__name__)

FIRST_USER = "admin"


def first_password(settings: Settings) -> tuple[str, str] | None:
    """(password, where it came from), or None when neither setting is given."""
    path = settings.admin_password_file
    if path is not None:
        try:
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                raise StartupError(
                    f"admin_password_file {path} is readable by others (mode {mode:o}); "
                    f"run: chmod 600 {path}"
                )
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StartupError(f"admin_password_file {path}: cannot read it ({exc})") from exc
        return text.rstrip("\r\n"), "admin_password_file"
    if settings.admin_password is not None:
        return settings.admin_password.get_secret_value(), "SIPBRIDGE_ADMIN_PASSWORD"
    return None


def ensure_first_user(credentials: Credentials, settings: Settings) -> None:
    """Create `admin` when no user exists and a password is configured."""
    given = first_password(settings)
    if credentials.user_count() > 0:
        if given is not None:
            log.info("device API: users exist; %s is not used", given[1])
        return
    if given is None:
        log.warning(
            "device API: no user yet; /api/v1 answers 503 until one is created "
            "(sipbridge users add admin --level security-administrator)"
        )
        return
    password, source = given
    try:
        credentials.add_user(FIRST_USER, Level.SECURITY_ADMINISTRATOR, password)
    except InvalidInput as exc:
        raise StartupError(f"{source}: {exc.problems[0].message}") from exc
    except Conflict:
        return  # another worker made it first
    log.info("device API: created user %r (Security Administrator) from %s", FIRST_USER, source)
