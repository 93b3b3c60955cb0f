"""Device profiles: what a phone family on a firmware line can do, from `sip_profiles/*.toml`.

A profile is matched from the User-Agent a phone registers with (or pinned per phone) and,
with the firmware version read from that User-Agent, answers the questions the rest of
sipbridge asks before anything is sent: does this phone have the command, can it take REST over
SIP (UCS 6.4.2+ / PVOS 8.0+, manual 002), which HTTP authentication does it expect (Basic only
before PVOS 8.3 / 9.2, Digest after), does it offer session tokens.

Matching and capability checks are pure; only `load_profiles` reads files.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
)

from sipbridge import catalog
from sipbridge.catalog import (
    Command,
    CommandSpec,
    KeySet,
    Line,
    Version,
    format_version,
    parse_version,
)
from sipbridge.errors import NotSupportedByPhone, ProfileError

AuthMethod = Literal["basic", "digest", "session"]
"""basic: RFC 7617 on every request. digest: RFC 7616, MD5 or SHA-256 as the phone challenges.
session: a PVOS session token (manual 002, Management.SessionCreate), obtained with digest."""


def _version(value: object) -> object:
    return parse_version(value) if isinstance(value, str) else value


VersionField = Annotated[
    Version, BeforeValidator(_version), PlainSerializer(format_version, return_type=str)
]

# A User-Agent pattern must name the firmware version it captures.
_VERSION_GROUP = "(?P<version>"


class Profile(BaseModel):
    """One `sip_profiles/<name>.toml` file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    title: str
    family: str
    firmware_line: Line | None = Field(
        None, description="The catalog line whose commands the phone has; none without a REST API."
    )
    user_agent: tuple[str, ...] = Field(
        min_length=1, description="Regular expressions, searched; each captures (?P<version>)."
    )
    priority: int = Field(0, description="Higher is tried first (a model before its family).")
    version_floor: VersionField = Field(
        description="The oldest firmware the profile covers; assumed when no version is known."
    )
    rest_api: bool = True
    rest_over_sip_since: VersionField | None = None
    management_over_sip_since: VersionField | None = Field(
        None,
        description="From this version commands other than call control may be sent in a "
        "NOTIFY when a request asks for ?transport=sip. Manual 002 shows REST over SIP for call "
        "control only, so no shipped profile sets it.",
    )
    key_set: KeySet = Field(
        "full",
        description="simulateKeyEvent labels: full (VVX, Edge E, Trio 8300) or audio "
        "(MicMute, VolDown, VolUp: Trio C60 and CCX, manual 002).",
    )
    call_id_ref_since: VersionField | None = Field(
        None, description="From this version Ref may be the SIP Call-ID, not only the handle."
    )
    http_auth: tuple[AuthMethod, ...] = ("basic",)
    digest_since: VersionField | None = Field(
        None, description="From this version Digest MD5 / SHA-256 is on and Basic off by default."
    )
    session_tokens_since: VersionField | None = None
    max_sessions: int = Field(10, ge=1, le=100)
    session_lifetime: float = Field(1500, gt=0, le=86400)
    body_limit: int = Field(20 * 1024, ge=1024, le=catalog.MAX_BODY_BYTES)
    command_since: dict[str, VersionField] = Field(
        default_factory=dict, description="Tighter minimum versions for this family."
    )
    lacks: dict[str, str] = Field(
        default_factory=dict, description="Commands this family lacks, with the reason."
    )
    notes: str = ""

    @field_validator("user_agent")
    @classmethod
    def _patterns_compile(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            re.compile(pattern)
            if _VERSION_GROUP not in pattern:
                raise ValueError(f"{pattern!r} captures no (?P<version>...)")
        return patterns

    @field_validator("command_since", "lacks")
    @classmethod
    def _commands_exist(cls, value: Mapping[str, object]) -> Mapping[str, object]:
        unknown = sorted(set(value) - {spec.name for spec in catalog.ALL_COMMANDS})
        if unknown:
            raise ValueError(f"not catalog commands: {', '.join(unknown)}")
        return value

    def match(self, user_agent: str) -> Version | None:
        """The firmware version if `user_agent` is this profile's, else None."""
        for pattern in self.user_agent:
            found = re.search(pattern, user_agent)
            if found:
                return parse_version(found.group("version").rstrip("."))
        return None


@dataclass(frozen=True, kw_only=True)
class Capabilities:
    """A profile at one firmware version: the answers, computed once per command."""

    profile: Profile
    version: Version
    version_known: bool

    @property
    def version_text(self) -> str:
        text = format_version(self.version)
        return text if self.version_known else f"{text} (assumed: no version known)"

    @property
    def rest_over_sip(self) -> bool:
        return self.profile.rest_api and _reached(self.version, self.profile.rest_over_sip_since)

    @property
    def management_over_sip(self) -> bool:
        return self.rest_over_sip and _reached(self.version, self.profile.management_over_sip_since)

    @property
    def call_id_as_ref(self) -> bool:
        return _reached(self.version, self.profile.call_id_ref_since)

    @property
    def session_tokens(self) -> bool:
        return _reached(self.version, self.profile.session_tokens_since)

    @property
    def http_auth(self) -> tuple[AuthMethod, ...]:
        """What the phone accepts with its default settings (manual 002, Table 2-2)."""
        if _reached(self.version, self.profile.digest_since):
            return ("session", "digest") if self.session_tokens else ("digest",)
        return self.profile.http_auth

    def lacks(self, spec: CommandSpec) -> str | None:
        """Why this phone cannot run `spec`, or None if it can."""
        profile = self.profile
        where = f"{profile.title} (profile {profile.name}, firmware {self.version_text})"
        if not profile.rest_api or profile.firmware_line is None:
            return f"{where} has no REST API"
        if spec.name in profile.lacks:
            return f"{where} lacks {spec.name}: {profile.lacks[spec.name]}"
        since = spec.availability.get(profile.firmware_line)
        if since is None:
            return f"{spec.name} is not in the {profile.firmware_line} command set of {where}"
        since = max(since, profile.command_since.get(spec.name, since))
        if self.version < since:
            return f"{spec.name} needs firmware {format_version(since)} or later; {where}"
        return None

    def refuse_data(self, command: Command) -> None:
        """Refuse, before sending, data this family's firmware would refuse: keys it does not
        have (simulateKeyEvent), more parameters than the line takes (getConfig / setConfig)."""
        if command.spec.name == "simulateKeyEvent":
            key_name = command.as_json()["data"]["KeyName"]
            why = catalog.key_refused(self.profile.key_set, key_name)
            if why:
                raise NotSupportedByPhone.one("data.KeyName", f"{self.profile.title}: {why}")
        catalog.fits_line(command, self.profile.firmware_line)


def _reached(version: Version, since: Version | None) -> bool:
    return since is not None and version >= since


@dataclass(frozen=True)
class ProfileBook:
    """Every loaded profile, tried by priority; pure lookups."""

    profiles: tuple[Profile, ...]
    # (pinned, user_agent) -> answer: the same few User-Agents come back on every command.
    _resolved: dict[tuple[str | None, str | None], Capabilities | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        ordered = sorted(self.profiles, key=lambda p: (-p.priority, p.name))
        object.__setattr__(self, "profiles", tuple(ordered))

    def get(self, name: str) -> Profile | None:
        return next((p for p in self.profiles if p.name == name), None)

    def names(self) -> list[str]:
        return sorted(p.name for p in self.profiles)

    def match(self, user_agent: str) -> Capabilities | None:
        for profile in self.profiles:
            version = profile.match(user_agent)
            if version is not None:
                return Capabilities(profile=profile, version=version, version_known=True)
        return None

    def resolve(self, *, pinned: str | None, user_agent: str | None) -> Capabilities | None:
        """A pinned profile wins (its version still read from the User-Agent when it says one);
        else the first profile whose pattern matches; None for a phone no profile knows."""
        key = (pinned, user_agent)
        if key in self._resolved:
            return self._resolved[key]
        answer = self._resolve(pinned=pinned, user_agent=user_agent)
        if len(self._resolved) >= 10_000:
            self._resolved.clear()  # bounded: a flood of odd User-Agents cannot grow it
        self._resolved[key] = answer
        return answer

    def _resolve(self, *, pinned: str | None, user_agent: str | None) -> Capabilities | None:
        if pinned is not None:
            profile = self.get(pinned)
            if profile is None:
                raise ProfileError(f"phone is pinned to profile {pinned!r}, which is not loaded")
            version = profile.match(user_agent) if user_agent else None
            if version is None and user_agent:
                version = _any_version(user_agent)
            if version is not None:
                return Capabilities(profile=profile, version=version, version_known=True)
            return Capabilities(profile=profile, version=profile.version_floor, version_known=False)
        if user_agent:
            return self.match(user_agent)
        return None


_UA_VERSION = re.compile(r"UA/(\d+(?:\.\d+){1,4})")


def _any_version(user_agent: str) -> Version | None:
    found = _UA_VERSION.search(user_agent)
    return parse_version(found.group(1)) if found else None


def parse_profile(name: str, text: str) -> Profile:
    """One profile from TOML text; ProfileError names the file's problem."""
    try:
        document = tomllib.loads(text)
        return Profile.model_validate({"name": name, **document})
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"sip profile {name}: not valid TOML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ProfileError(f"sip profile {name}: {problems}") from exc


def load_profiles(directory: Path) -> ProfileBook:
    """Every `*.toml` in `directory`, by file name; refuses an empty or missing directory."""
    if not directory.is_dir():
        raise ProfileError(f"sip_profiles_dir {directory} is not a directory")
    return book_of((path.stem, path.read_text()) for path in sorted(directory.glob("*.toml")))


def book_of(files: Iterable[tuple[str, str]]) -> ProfileBook:
    profiles = tuple(parse_profile(name, text) for name, text in files)
    if not profiles:
        raise ProfileError("no sip profiles found")
    return ProfileBook(profiles)
