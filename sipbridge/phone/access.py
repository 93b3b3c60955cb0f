"""How to reach a phone's own REST API: URL, user, password, auth method (a TOML secrets file).

    [default]                 # every phone, unless its own entry says otherwise
    user = "Polycom"          # manual 002: the REST API's admin user, case-sensitive
    password = "..."
    [phones."1001"]
    password = "..."
    url = "https://10.0.0.5"  # default: phone_http_scheme://<contact host>[:phone_http_port]
    auth = "digest"           # basic | digest | session; default: what the profile says
    sip_user = "1001"         # answers a 401/407 to our NOTIFY (default: the phone's id)
    sip_password = "..."      # no sip_password: a challenged NOTIFY fails (502)

Passwords are `SecretStr`: their repr, logs and problem bodies show `**********`.
"""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from sipbridge.errors import ProfileError
from sipbridge.phone.profiles import AuthMethod

log = logging.getLogger(__name__)

DEFAULT_USER = "Polycom"


class AccessEntry(BaseModel):
    """One phone's (or the default) access; unset fields fall back to the default entry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # RFC 7617 §2: a user-id for Basic cannot contain a colon.
    user: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=r"^[^:\x00-\x1f\x7f]+$"
    )
    password: SecretStr | None = Field(default=None, min_length=1, max_length=256)
    auth: AuthMethod | None = None
    url: str | None = Field(
        default=None, pattern=r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(:[0-9]{1,5})?/?$"
    )
    # -- SIP digest credentials, for a phone or proxy that challenges our NOTIFY (RFC 3261 §22)
    sip_user: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f\"\\]+$"
    )
    sip_password: SecretStr | None = Field(default=None, min_length=1, max_length=256)

    def over(self, default: AccessEntry) -> AccessEntry:
        return AccessEntry(
            user=self.user or default.user,
            password=self.password or default.password,
            auth=self.auth or default.auth,
            url=self.url,  # a URL is one phone's, never inherited
            sip_user=self.sip_user or default.sip_user,
            sip_password=self.sip_password or default.sip_password,
        )


class AccessFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    default: AccessEntry = AccessEntry()
    phones: dict[str, AccessEntry] = Field(default_factory=dict)


class PhoneAccessBook:
    """Looks up the access for a phone id; the default entry fills the gaps."""

    def __init__(self, document: AccessFile | None = None) -> None:
        self._file = document or AccessFile()

    def for_phone(self, phone_id: str) -> AccessEntry:
        entry = self._file.phones.get(phone_id, AccessEntry())
        merged = entry.over(self._file.default)
        return merged.model_copy(update={"user": merged.user or DEFAULT_USER})

    @classmethod
    def parse(cls, text: str, *, source: str = "phone_credentials_file") -> PhoneAccessBook:
        try:
            return cls(AccessFile.model_validate(tomllib.loads(text)))
        except tomllib.TOMLDecodeError as exc:
            raise ProfileError(f"{source}: not valid TOML: {exc}") from exc
        except ValidationError as exc:
            # Name the fields only: a validation message could quote a password.
            fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors())
            raise ProfileError(f"{source}: invalid entries: {fields}") from None


def load_access(path: Path | None) -> PhoneAccessBook:
    """The secrets file, or an empty book (no phone has HTTP credentials) when none is set."""
    if path is None:
        return PhoneAccessBook()
    try:
        text = path.read_text()
        mode = path.stat().st_mode
    except OSError as exc:
        raise ProfileError(f"phone_credentials_file {path}: {exc.strerror}") from exc
    if mode & 0o077:
        log.warning("phone_credentials_file %s is readable by others; chmod 600 it", path)
    return PhoneAccessBook.parse(text, source=f"phone_credentials_file {path}")
