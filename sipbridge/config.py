"""Settings: one pydantic-settings model, read from a TOML file and `SIPBRIDGE_*` variables.

Precedence, highest first: keyword arguments (the CLI), environment, the TOML file, defaults.
Every field is documented in docs/configuration.md; keep the two in step.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from sipbridge.sip.networks import DEFAULT_PHONE_NETWORKS

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
    # -- one command per phone: the caller's deadline and the transaction's bound ---------------
    command_deadline: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Seconds a caller waits for the phone's answer, queueing included (504 after).",
    )
    sip_transaction_timeout: float | None = Field(
        default=None,
        ge=1,
        le=32,
        description="SIP Timer F in seconds: when the UA gives up on an unanswered NOTIFY; "
        "also the bound of one REST call to a phone. At most command_deadline; default "
        "0.8 x command_deadline (at least 1).",
    )
    phone_queue_limit: int = Field(
        default=16, ge=1, le=10_000, description="Commands that may wait per phone before 429."
    )
    command_log_max_rows: int = Field(
        default=1_000_000,
        ge=1_000,
        le=1_000_000_000,
        description="Newest commands the command log keeps; older ones are pruned.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Processes serving the HTTP API (SO_REUSEPORT); worker i's SIP user agent "
        "binds sip_port + i. One command per phone still holds across them.",
    )
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")

    # -- phone profiles and the phone's own REST API (HTTP transport) ---------------------------
    sip_profiles_dir: Path = Field(
        default=Path(__file__).resolve().parents[1] / "sip_profiles",
        description="Directory of the device profiles (*.toml), one per family and firmware line.",
    )
    phone_credentials_file: Path | None = Field(
        default=None,
        description="TOML secrets file: REST API user/password (default and per phone), "
        "optional URL and auth method per phone. None: no phone is reachable over HTTP.",
    )
    phone_http_scheme: Literal["http", "https"] = Field(
        default="https", description="Scheme of a phone's REST API when its entry gives no URL."
    )
    phone_http_port: int | None = Field(
        default=None, ge=1, le=65535, description="Port of the phones' REST API; default 80/443."
    )
    phone_http_verify_tls: bool = Field(
        default=True, description="Verify the phones' TLS certificates (often self-signed)."
    )
    phone_http_ca_file: Path | None = Field(
        default=None, description="CA bundle (PEM) that signed the phones' certificates."
    )

    # -- the SIP listener: what the tracker hears over SIP (REGISTER, dialog / reg NOTIFYs) ----
    listen_host: str | None = Field(
        default=None, description="Address of the SIP listener (UDP+TCP); default sip_host."
    )
    listen_port: int = Field(default=5062, ge=0, le=65535, description="Port of the SIP listener.")
    sip_allow: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("127.0.0.0/8", "::1"),
        description="Networks (CIDR, comma-separated) the SIP listener accepts requests from.",
    )
    sip_rate_limit: float = Field(
        default=200.0, gt=0, description="Requests a second one source may send the listener."
    )
    sip_rate_burst: int = Field(default=400, ge=1, description="Burst above sip_rate_limit.")

    # -- listener abuse: what strangers and floods may cost (issue #14 item 5) ------------------
    sip_stranger_udp: Literal["drop", "answer"] = Field(
        default="drop",
        description="UDP requests from outside sip_allow: dropped (their source may be "
        "spoofed; a 403 would reflect at it) or answered 403 within sip_stranger_rate.",
    )
    sip_stranger_rate: float = Field(
        default=5.0,
        gt=0,
        le=10_000,
        description="Packets and connections from strangers, all together, a second that are "
        "audited (and answered 403 where they are answered); the rest are counted and dropped.",
    )
    sip_stranger_burst: int = Field(
        default=20, ge=1, le=100_000, description="Burst above sip_stranger_rate."
    )
    sip_audit_max_rows: int = Field(
        default=100_000,
        ge=100,
        le=100_000_000,
        description="Newest rows the audit table keeps; older ones are pruned.",
    )
    sip_audit_max_age: float = Field(
        default=30 * 86400.0,
        ge=60,
        description="Seconds an audit row is kept at most.",
    )
    sip_tcp_idle_timeout: float = Field(
        default=180.0,
        gt=0,
        le=86400,
        description="Seconds a TCP connection to the listener may stay silent before it is "
        "closed (above RFC 5626's 120 s keep-alive interval).",
    )
    sip_tcp_max_connections: int = Field(
        default=1024, ge=1, le=1_000_000, description="TCP connections the listener keeps open."
    )
    sip_tcp_max_per_source: int = Field(
        default=32,
        ge=1,
        le=1_000_000,
        description="TCP connections one source address may hold open to the listener.",
    )

    subscribe_dialogs: Literal["sip", "all", "none"] = Field(
        default="sip",
        description="Subscribe to dialog events (RFC 4235) of phones learned over SIP, "
        "of all phones, or none.",
    )
    dialog_subscription_expires: int = Field(
        default=3600, ge=60, le=86400, description="Expires asked for in dialog SUBSCRIBEs."
    )
    register_credentials_file: Path | None = Field(
        default=None,
        description="TOML file with a [register] table of phone id = password: REGISTERs "
        "sent to the listener must then carry matching digest credentials.",
    )
    register_realm: str = Field(
        default="sipbridge",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Digest realm for REGISTER challenges.",
    )
    register_digest_algorithms: Annotated[tuple[Literal["SHA-256", "MD5"], ...], NoDecode] = Field(
        default=("SHA-256", "MD5"),
        min_length=1,
        description="Digest algorithms offered in REGISTER challenges, in order of preference.",
    )
    sip_relay_deadline: float = Field(
        default=8.0,
        ge=1,
        le=30,
        description="Seconds a PBX's relayed ACTION-URI NOTIFY may take before sipbridge "
        "answers it 504 (never 408, RFC 4320; well under the PBX's 32 s Timer F).",
    )
    # -- API authentication throttle (admin/throttle.py; /v1 keys and /api users alike) --
    api_auth_failure_limit: int = Field(
        default=20,
        ge=1,
        le=100_000,
        description="Failed authentications (401) one client address may have within "
        "api_auth_failure_window before its requests get 429 with Retry-After.",
    )
    api_auth_failure_window: float = Field(
        default=60.0,
        gt=0,
        le=86_400,
        description="Seconds of the window in which api_auth_failure_limit counts.",
    )
    sip_outbound_proxy: str | None = Field(
        default=None,
        description="SIP URI of a proxy every NOTIFY / SUBSCRIBE goes through "
        "(e.g. sip:127.0.0.1:5060;lr); none: straight to the phone's contact.",
    )

    # -- TLS (issue #14 item 9): one certificate, one trust store, three uses -------------------
    # The SIP user agent (sips: / ;transport=tls phones), the SIP listener over TLS and HTTPS on
    # the front API all read these; sipbridge.tls checks the files once at start.
    tls_cert_file: Path | None = Field(
        default=None,
        description="sipbridge's certificate chain (PEM): the server certificate of the TLS "
        "listener and of HTTPS, and the client certificate toward phones.",
    )
    tls_key_file: Path | None = Field(
        default=None, description="Private key (PEM) of tls_cert_file; not world-readable."
    )
    tls_ca_file: Path | None = Field(
        default=None,
        description="Trust store (PEM) for the phones' certificates; default: the system's.",
    )
    tls_verify_phones: bool = Field(
        default=True, description="Verify a phone's certificate and name before sending to it."
    )
    sip_tls_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="TLS port of the SIP user agent (worker i: + i); none: no SIP over TLS.",
    )
    listen_tls_port: int | None = Field(
        default=None, ge=0, le=65535, description="TLS port of the SIP listener; none: off."
    )
    http_tls: bool = Field(default=False, description="Serve the front API over HTTPS only.")
    http_tls_cert_file: Path | None = Field(
        default=None, description="HTTPS certificate chain; default tls_cert_file."
    )
    http_tls_key_file: Path | None = Field(
        default=None, description="HTTPS private key; default tls_key_file."
    )


    # -- where phones may be, and resolving their contacts (RFC 3263; issue #14 items 1, 3) ---
    phone_networks: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_PHONE_NETWORKS,
        min_length=1,
        description="Networks (CIDR, comma-separated) a phone's contact and REST URL may "
        "resolve to; anything else is refused (422 / REGISTER 403 / 502 at send time).",
    )
    dns_nameservers: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="DNS servers (ip or ip:port, comma-separated) for contacts with a host "
        "name; empty: those of /etc/resolv.conf.",
    )
    dns_timeout: float = Field(
        default=2.0,
        gt=0,
        le=30,
        description="Seconds one contact's resolution may take; at most 80 % of "
        "command_deadline is used, so a dead DNS is reported before the deadline.",
    )
    dns_cache_size: int = Field(
        default=4096, ge=16, le=1_000_000, description="DNS answers kept (for their TTL)."
    )

    # -- the device API (/api/v1, manual 004; docs/device-api.md) -------------------------------
    admin_password_file: Path | None = Field(
        default=None,
        description="With no device-API user yet, the first Security Administrator, 'admin', "
        "gets the password in this file (mode 600). Ignored once a user exists.",
    )
    admin_password: SecretStr | None = Field(
        default=None,
        description="As admin_password_file, from the environment "
        "(SIPBRIDGE_ADMIN_PASSWORD); the file wins when both are set.",
    )
    metrics_allow: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Networks that may read /metrics without credentials (default none: "
        "Monitor credentials, Basic or a Monitor-level key).",
    )
    kpi_interval: float = Field(
        default=900.0,
        ge=1,
        le=86_400,
        description="Seconds in one KPI interval (manual 004: 15 minutes).",
    )
    kpi_history: int = Field(
        default=96, ge=1, le=10_000, description="Finished KPI intervals kept (96: one day)."
    )
    alarm_history_max_rows: int = Field(
        default=10_000,
        ge=100,
        le=10_000_000,
        description="Alarm history rows kept; the oldest go first. Survives restarts.",
    )
    # -- events (issue #18; docs/events.md) ------------------------------------------------------
    event_retention: float = Field(
        default=86_400.0,
        ge=60,
        le=31 * 86_400,
        description="Seconds the event log keeps events (SSE resumes, webhooks redeliver).",
    )
    event_max_rows: int = Field(
        default=1_000_000,
        ge=1_000,
        le=100_000_000,
        description="Events the log keeps at most, newest first, whatever their age.",
    )
    sse_heartbeat: float = Field(
        default=15.0, gt=0, le=300, description="Seconds between SSE heartbeat comments."
    )
    sse_queue_limit: int = Field(
        default=1_000,
        ge=10,
        le=1_000_000,
        description="Events one SSE client may fall behind before it is cut off (with a final "
        "event saying where to resume).",
    )
    alarm_unreachable_after: int = Field(
        default=3,
        ge=1,
        le=1_000,
        description="Consecutive timeouts after which a phone is alarmed unreachable "
        "(cleared by its next answer).",
    )
    # -- webhooks (issue #18; docs/events-webhooks.md) -------------------------------------------
    webhook_allow: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("127.0.0.0/8", "::1/128"),
        description="Networks webhook URLs may resolve to (an SSRF guard, checked at creation "
        "and at every delivery); default loopback only.",
    )
    webhook_max_tries: int = Field(
        default=12, ge=1, le=100, description="Attempts per delivery before it is dead-lettered."
    )
    webhook_timeout: float = Field(
        default=5.0, gt=0, le=60, description="Seconds one webhook POST may take, all told."
    )
    webhook_backoff_base: float = Field(
        default=2.0, gt=0, le=3_600, description="Seconds of the first retry step (doubling)."
    )
    webhook_backoff_cap: float = Field(
        default=3_600.0, gt=0, le=86_400, description="Longest retry step, in seconds."
    )
    webhook_concurrency: int = Field(
        default=8, ge=1, le=256, description="Webhook POSTs in flight at once."
    )

    @field_validator(
        "api_keys",
        "sip_allow",
        "register_digest_algorithms",
        "phone_networks",
        "dns_nameservers",
        "metrics_allow",
        "webhook_allow",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        """A list setting given as one string (the environment): comma-separated."""
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("api_keys")
    @classmethod
    def _keys_are_long_enough(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for key in value:
            if len(key) < 8 or not key.isprintable() or " " in key:
                raise ValueError("each API key needs 8+ printable characters and no spaces")
        return value

    @field_validator("http_host", "sip_host", "listen_host")
    @classmethod
    def _is_ip_address(cls, value: str | None) -> str | None:
        # Sockets bind by address; a hostname would be resolved at an unknown time.
        if value is not None:
            ipaddress.ip_address(value)
        return value

    @field_validator("sip_allow", "phone_networks", "metrics_allow", "webhook_allow")
    @classmethod
    def _are_networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for network in value:
            ipaddress.ip_network(network, strict=False)
        return value

    @field_validator("sip_outbound_proxy")
    @classmethod
    def _is_sip_uri(cls, value: str | None) -> str | None:
        if value is not None:
            from sipbridge.sip.uri import SipParseError, parse_uri

            try:
                parse_uri(value)
            except SipParseError as exc:
                raise ValueError(f"not a SIP URI: {exc.reason}") from exc
        return value

    @field_validator("dns_nameservers")
    @classmethod
    def _are_nameservers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from sipbridge.sip.resolver import parse_nameserver

        for server in value:
            parse_nameserver(server)
        return value

    @model_validator(mode="after")
    def _workers_fit(self) -> Settings:
        """Several workers share one HTTP port and reach one listener: neither may be 0."""
        if self.workers > 1:
            if self.http_port == 0 or self.listen_port == 0:
                raise ValueError("workers > 1 needs a fixed http_port and listen_port (not 0)")
            if self.sip_port and self.sip_port + self.workers - 1 > 65535:
                raise ValueError(
                    f"sip_port + workers - 1 must be at most 65535 (workers use "
                    f"sip_port .. sip_port + {self.workers - 1})"
                )
        return self

    @model_validator(mode="after")
    def _tls_fits(self) -> Settings:
        """Whatever serves TLS needs a certificate; the files themselves are read at start."""
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if (self.http_tls_cert_file is None) != (self.http_tls_key_file is None):
            raise ValueError("http_tls_cert_file and http_tls_key_file go together")
        if self.http_tls_cert_file is not None and not self.http_tls:
            raise ValueError("http_tls_cert_file is set but http_tls is off: set http_tls = true")
        if self.http_tls and self.http_tls_files is None:
            raise ValueError("http_tls needs tls_cert_file/tls_key_file (or http_tls_*_file)")
        if self.listen_tls_port is not None and self.tls_cert_file is None:
            raise ValueError("listen_tls_port needs tls_cert_file and tls_key_file")
        if self.sip_tls_port:
            ours = range(self.sip_tls_port, self.sip_tls_port + self.workers)
            if ours.stop - 1 > 65535:
                raise ValueError("sip_tls_port + workers - 1 must be at most 65535")
            taken = range(self.sip_port, self.sip_port + self.workers) if self.sip_port else ()
            if set(ours) & set(taken):  # TLS and TCP both need the TCP port
                raise ValueError("sip_tls_port .. + workers - 1 overlaps sip_port .. + workers - 1")
        return self

    @property
    def http_tls_files(self) -> tuple[Path, Path] | None:
        """Certificate and key of HTTPS: its own if given, else the shared ones."""
        if self.http_tls_cert_file is not None and self.http_tls_key_file is not None:
            return self.http_tls_cert_file, self.http_tls_key_file
        if self.tls_cert_file is not None and self.tls_key_file is not None:
            return self.tls_cert_file, self.tls_key_file
        return None

    @model_validator(mode="after")
    def _transaction_ends_within_the_deadline(self) -> Settings:
        """A command sent at once ends (answer or Timer F) before its caller's deadline, so a
        transaction outlives its caller's wait only by the time it queued, and never by more
        than Timer F; the lane is held until it ends (sipbridge/commands/lanes.py)."""
        if self.transaction_timeout > self.command_deadline:
            raise ValueError(
                f"sip_transaction_timeout ({self.transaction_timeout:g} s) must not exceed "
                f"command_deadline ({self.command_deadline:g} s)"
                + ("" if self.sip_transaction_timeout else "; Timer F is at least 1 s")
            )
        return self

    @property
    def transaction_timeout(self) -> float:
        """Timer F, as set or derived from the deadline (RFC 3261 §17.1.2.2)."""
        if self.sip_transaction_timeout is not None:
            return self.sip_transaction_timeout
        return min(32.0, max(1.0, round(self.command_deadline * 0.8, 3)))

    def for_worker(self, index: int) -> Settings:
        """Worker `index`'s settings: its own SIP user agent port (sip_port + index)."""
        if index == 0:
            return self
        update: dict[str, int] = {}
        if self.sip_port:
            update["sip_port"] = self.sip_port + index
        if self.sip_tls_port:
            update["sip_tls_port"] = self.sip_tls_port + index
        return self.model_copy(update=update) if update else self

    @property
    def resolver_timeout(self) -> float:
        """The DNS budget of one command: within its deadline, with time left to say why."""
        return min(self.dns_timeout, 0.8 * self.command_deadline)

    @property
    def listener_host(self) -> str:
        return self.listen_host or self.sip_host

    @property
    def listener_contact_host(self) -> str:
        """Where phones reach the listener: the contact host unless it binds elsewhere."""
        host = self.listener_host
        if self.sip_contact_host or ipaddress.ip_address(host).is_unspecified:
            return self.contact_host
        return host

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
