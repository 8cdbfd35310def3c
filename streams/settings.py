"""Tally's configuration: one frozen settings object built from TALLY_* environment variables."""

from __future__ import annotations

import ssl
from datetime import timedelta
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from streams import keymaterial
from streams.errors import TallyError
from streams.legs import derive_leg_key


class ConfigError(TallyError):
    """Bad configuration; the message is one line naming the variable."""


class _InvalidError(ValueError):
    """A check across settings failed; `variable` is the one to fix."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(message)
        self.variable = variable


class Settings(BaseSettings):
    # An empty variable (`TALLY_JWT_JWKS_URL=` in a compose file) means "not set": its default.
    model_config = SettingsConfigDict(
        env_prefix="TALLY_", frozen=True, extra="ignore", env_ignore_empty=True
    )

    kafka_bootstrap: str = "localhost:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = Field(default=None, repr=False)
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    group_id: str = "tally"

    topic_commands: str = "ledger.commands"
    topic_events: str = "ledger.events"
    topic_transfers: str = "ledger.transfers"
    topic_dlq: str = "ledger.dlq"
    create_topics: bool = True
    partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)

    mongo_uri: str = Field(default="mongodb://localhost:27017", repr=False)
    mongo_db: str = "tally"

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8081, ge=0, le=65535)
    api_max_wait: float = Field(default=30.0, ge=0)

    # tally watch (contract §16)
    watch_group_id: str = "tally-watch"
    watch_host: str = "127.0.0.1"
    watch_port: int = Field(default=8082, ge=0, le=65535)
    watch_max_outflows: int = Field(default=20, ge=1)
    watch_window_s: int = Field(default=60, ge=1)
    watch_freeze: bool = False
    watch_jwt_private_key: str | None = Field(default=None, repr=False)
    watch_jwt_key_id: str | None = None
    watch_url: str = "http://127.0.0.1:8082"  # where tally api reaches the watch (console)

    jwt_secret: str | None = Field(default=None, repr=False)
    jwt_public_key: str | None = Field(default=None, repr=False)
    jwt_jwks_url: str | None = None
    jwt_jwks_refresh: float = Field(default=60.0, gt=0)
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    leg_secret: str | None = Field(default=None, repr=False, min_length=32)

    event_source: str = "tally"
    max_amount: int = Field(default=10**15, ge=1)
    currencies: Annotated[frozenset[str], NoDecode] = frozenset({"EUR", "USD", "GBP", "CHF", "JPY"})
    max_message_bytes: int = Field(default=65536, ge=1)
    max_headers: int = Field(default=64, ge=1)
    record_max_attempts: int = Field(default=3, ge=1)
    idempotency_days: float = Field(default=30.0, gt=0)

    batch_max_records: int = Field(default=1000, ge=1)
    poll_timeout_ms: int = Field(default=100, ge=1)
    shutdown_timeout: float = Field(default=30.0, gt=0)
    session_timeout_ms: int = Field(default=10000, ge=1000)
    retry_backoff_max: float = Field(default=5.0, gt=0)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    @field_validator("currencies", mode="before")
    @classmethod
    def _split_currencies(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(c.strip().upper() for c in value.split(",") if c.strip())
        return value

    @field_validator("currencies")
    @classmethod
    def _iso_codes(cls, value: frozenset[str]) -> frozenset[str]:
        bad = sorted(c for c in value if len(c) != 3 or not c.isalpha())
        if bad or not value:
            raise ValueError(f"expected comma-separated ISO 4217 codes, got {sorted(value)}")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("jwt_public_key")
    @classmethod
    def _verification_key(cls, value: str | None) -> str | None:
        return keymaterial.verification_key(value) if value is not None else None

    @field_validator("watch_jwt_private_key")
    @classmethod
    def _signing_key(cls, value: str | None) -> str | None:
        return keymaterial.signing_key(value) if value is not None else None

    @field_validator("jwt_jwks_url", "watch_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            url = urlsplit(value)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value

    @field_validator("kafka_ssl_cafile", "kafka_ssl_certfile")
    @classmethod
    def _certificates(cls, value: str | None) -> str | None:
        return keymaterial.certificates_file(value) if value is not None else None

    @field_validator("kafka_ssl_keyfile")
    @classmethod
    def _private_key(cls, value: str | None) -> str | None:
        return keymaterial.private_key_file(value) if value is not None else None

    @model_validator(mode="after")
    def _jwt_key_required(self) -> Settings:
        if not (self.jwt_secret or self.jwt_public_key or self.jwt_jwks_url):
            raise _InvalidError(
                "TALLY_JWT_SECRET",
                "required unless TALLY_JWT_PUBLIC_KEY or TALLY_JWT_JWKS_URL is set",
            )
        return self

    @model_validator(mode="after")
    def _watch_key_required(self) -> Settings:
        # The watch's freeze commands must carry a token the workers accept (contract §16).
        if self.watch_freeze and not (self.jwt_secret or self.watch_jwt_private_key):
            raise _InvalidError(
                "TALLY_WATCH_JWT_PRIVATE_KEY",
                "required with TALLY_WATCH_FREEZE=true unless TALLY_JWT_SECRET is set",
            )
        return self

    @model_validator(mode="after")
    def _kafka_sasl(self) -> Settings:
        protocol = f"TALLY_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol}"
        given = {
            "TALLY_KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism,
            "TALLY_KAFKA_SASL_USERNAME": self.kafka_sasl_username,
            "TALLY_KAFKA_SASL_PASSWORD": self.kafka_sasl_password,
        }
        if not self.kafka_security_protocol.startswith("SASL_"):
            for variable, value in given.items():
                if value:  # set but unused: the operator meant SASL and would not get it
                    raise _InvalidError(
                        variable, f"set, but {protocol} uses no SASL (SASL_SSL would)"
                    )
            return self
        for variable, value in given.items():
            if not value:
                raise _InvalidError(variable, f"required with {protocol}")
        return self

    @model_validator(mode="after")
    def _kafka_tls(self) -> Settings:
        files = {
            "TALLY_KAFKA_SSL_CAFILE": self.kafka_ssl_cafile,
            "TALLY_KAFKA_SSL_CERTFILE": self.kafka_ssl_certfile,
            "TALLY_KAFKA_SSL_KEYFILE": self.kafka_ssl_keyfile,
        }
        if not self.kafka_security_protocol.endswith("SSL"):
            protocol = f"TALLY_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol}"
            for variable, value in files.items():
                if value:
                    raise _InvalidError(variable, f"set, but {protocol} uses no TLS (SSL would)")
            return self
        certfile, keyfile = self.kafka_ssl_certfile, self.kafka_ssl_keyfile
        if keyfile and not certfile:
            raise _InvalidError("TALLY_KAFKA_SSL_CERTFILE", "required with TALLY_KAFKA_SSL_KEYFILE")
        if certfile and not keyfile and not keymaterial.holds_private_key(certfile):
            raise _InvalidError(
                "TALLY_KAFKA_SSL_KEYFILE",
                "required with TALLY_KAFKA_SSL_CERTFILE (that file holds no private key)",
            )
        self._ssl_context()
        return self

    def _ssl_context(self) -> ssl.SSLContext:
        """The client TLS context (as aiokafka's create_ssl_context builds it), or _InvalidError."""
        try:
            context = ssl.create_default_context(
                ssl.Purpose.SERVER_AUTH, cafile=self.kafka_ssl_cafile
            )
        except OSError as exc:  # ssl.SSLError included
            raise _InvalidError(
                "TALLY_KAFKA_SSL_CAFILE", f"unusable as CA certificates: {exc}"
            ) from None
        if self.kafka_ssl_certfile:
            try:
                context.load_cert_chain(self.kafka_ssl_certfile, self.kafka_ssl_keyfile)
            except OSError as exc:
                key = "KEYFILE" if self.kafka_ssl_keyfile else "CERTFILE"
                variable = f"TALLY_KAFKA_SSL_{key}"
                raise _InvalidError(
                    variable, f"unusable with TALLY_KAFKA_SSL_CERTFILE: {exc}"
                ) from None
        return context

    @model_validator(mode="after")
    def _leg_key_required(self) -> Settings:
        # Without an HS256 secret there is nothing shared to derive the leg key from (ADR 6).
        if not (self.leg_secret or self.jwt_secret):
            raise _InvalidError(
                "TALLY_LEG_SECRET",
                "must be set (32+ characters) when tokens are verified "
                "with TALLY_JWT_PUBLIC_KEY or TALLY_JWT_JWKS_URL",
            )
        return self

    @property
    def leg_key(self) -> bytes:
        """The key transfer legs are signed with: TALLY_LEG_SECRET, else derived (ADR 6)."""
        if self.leg_secret:
            return self.leg_secret.encode()
        assert self.jwt_secret is not None  # _leg_key_required
        return derive_leg_key(self.jwt_secret)

    @property
    def idempotency_window(self) -> timedelta:
        """How long a command id is remembered (TALLY_IDEMPOTENCY_DAYS)."""
        return timedelta(days=self.idempotency_days)

    @property
    def kafka_options(self) -> dict[str, object]:
        """Connection options shared by every aiokafka client."""
        options: dict[str, object] = {
            "bootstrap_servers": self.kafka_bootstrap,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            options |= {
                "sasl_mechanism": self.kafka_sasl_mechanism,
                "sasl_plain_username": self.kafka_sasl_username,
                "sasl_plain_password": self.kafka_sasl_password,
            }
        if self.kafka_security_protocol.endswith("SSL"):
            try:  # checked at start-up; a file changed since then still fails in one line
                options["ssl_context"] = self._ssl_context()
            except _InvalidError as exc:
                raise ConfigError(f"invalid configuration: {exc.variable}: {exc}") from None
        return options


def load_settings() -> Settings:
    """Build Settings, turning a validation error into one line naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        loc, cause = first["loc"], first.get("ctx", {}).get("error")
        if isinstance(cause, _InvalidError):  # a model validator: no loc, the variable is named
            name = cause.variable
        else:
            name = f"TALLY_{str(loc[0]).upper()}" if loc else "configuration"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"invalid configuration: {name}: {message}") from None
