"""Settings: one pydantic-settings model, read from a TOML file and `SIPBRIDGE_*` variables.

Precedence, highest first: keyword arguments (the CLI), environment, the TOML file, defaults.
Every field is documented in docs/configuration.md; keep the two in step.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "SIPBRIDGE_"


class Settings(BaseSettings):
    """Everything an operator can set. Defaults run a working gateway on loopback."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        frozen=True,
    )

    http_host: str = Field(default="127.0.0.1", description="Address the HTTP API listens on.")
    http_port: int = Field(default=8080, ge=0, le=65535, description="Port of the HTTP API.")
    sip_host: str = Field(
        default="127.0.0.1", description="Address the SIP user agent binds (UDP+TCP)."
    )
    sip_port: int = Field(default=5070, ge=0, le=65535, description="Port of the SIP user agent.")
    sip_contact_host: str | None = Field(
        default=None,
        description="Host put in the Contact of sent requests; default sip_host, or this "
        "machine's address when sip_host is 0.0.0.0 / ::.",
    )
    data_dir: Path = Field(
        default=Path("sipbridge-data"), description="Holds the SQLite tracker database."
    )
    api_keys: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Accepted Bearer keys, comma-separated. Empty: one is generated and kept.",
    )
    command_deadline: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Seconds a caller waits for the phone's answer (504 after).",
    )
    sip_transaction_timeout: float = Field(
        default=4.0,
        ge=1,
        le=32,
        description="SIP Timer F in seconds: when the UA gives up on an unanswered NOTIFY.",
    )
    phone_queue_limit: int = Field(
        default=16, ge=1, le=10_000, description="Commands that may wait per phone before 429."
    )
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(k.strip() for k in value.split(",") if k.strip())
        return value

    @field_validator("api_keys")
    @classmethod
    def _keys_are_long_enough(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for key in value:
            if len(key) < 8 or not key.isprintable() or " " in key:
                raise ValueError("each API key needs 8+ printable characters and no spaces")
        return value

    @field_validator("http_host", "sip_host")
    @classmethod
    def _is_ip_address(cls, value: str) -> str:
        # pjsua binds by address; a hostname would be resolved at an unknown time.
        ipaddress.ip_address(value)
        return value

    @property
    def contact_host(self) -> str:
        """Where phones can reach us: never a wildcard address (RFC 3261 §8.1.1.8)."""
        if self.sip_contact_host:
            return self.sip_contact_host
        if ipaddress.ip_address(self.sip_host).is_unspecified:
            return socket.gethostbyname(socket.gethostname())
        return self.sip_host

    @property
    def database_path(self) -> Path:
        return self.data_dir / "tracker.sqlite3"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _CONFIG_FILE.get("path")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


# The TOML path is handed to settings_customise_sources through this one-slot holder,
# because pydantic-settings builds the sources from the class, not the instance.
_CONFIG_FILE: dict[str, Path | None] = {"path": None}


class ConfigFileError(Exception):
    """The --config file is missing or not valid TOML."""


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from an optional TOML file, the environment and overrides."""
    if config_file is not None and not config_file.is_file():
        raise ConfigFileError(f"config file not found: {config_file}")
    _CONFIG_FILE["path"] = config_file
    try:
        return Settings(**overrides)
    finally:
        _CONFIG_FILE["path"] = None
