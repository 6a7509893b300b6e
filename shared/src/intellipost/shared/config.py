"""Configuration base for every component: pydantic-settings with per-module env prefixes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

GLOBAL_PREFIX = "INTELLIPOST_"
Environment = Literal["development", "test", "staging", "production"]


class ConfigError(Exception):
    """A setting that makes the component unsafe or unable to start."""


def env_file() -> Path:
    """The one root `.env` every module reads (`INTELLIPOST_ENV_FILE` points elsewhere)."""
    return Path(os.environ.get("INTELLIPOST_ENV_FILE", ".env"))


class _GlobalEnvSource(EnvSettingsSource):
    """Reads the cross-cutting fields from `INTELLIPOST_<FIELD>` (no module in the name)."""

    def __init__(self, settings_cls: type[BaseSettings], fields: frozenset[str]) -> None:
        super().__init__(
            settings_cls, env_prefix=GLOBAL_PREFIX, case_sensitive=False, env_ignore_empty=True
        )
        self._fields = fields

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name not in self._fields:
            return None, field_name, False
        return super().get_field_value(field, field_name)


class _GlobalDotEnvSource(DotEnvSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], fields: frozenset[str]) -> None:
        super().__init__(
            settings_cls,
            env_file=env_file(),
            env_prefix=GLOBAL_PREFIX,
            case_sensitive=False,
            env_ignore_empty=True,
        )
        self._fields = fields

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name not in self._fields:
            return None, field_name, False
        return super().get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        # The stock dotenv source also keeps unknown prefixed keys as extras; we ignore them.
        return {name: value for name, value in super().__call__().items() if name in self._fields}


class BaseModuleConfig(BaseSettings):
    """What every component has: identity, environment and how it logs.

    Subclasses set ``model_config = module_config("user")`` (env prefix
    ``INTELLIPOST_USER_``). Fields named in ``global_fields`` may also be given once for the
    whole fleet as ``INTELLIPOST_<FIELD>``; the module-prefixed variable wins over it, and
    the environment wins over `.env`, which wins over defaults.
    """

    model_config = SettingsConfigDict(
        env_prefix=GLOBAL_PREFIX, extra="ignore", env_ignore_empty=True
    )

    module: ClassVar[str] = ""
    global_fields: ClassVar[frozenset[str]] = frozenset(
        {
            "environment",
            "debug",
            "log_level",
            "log_format",
            "otel_exporter_endpoint",
            "otel_exporter_protocol",
            "otel_sample_ratio",
            "var_dir",
            "redis_url",
            "jwks_url",
            "jwt_issuer",
            "jwt_audience",
        }
    )

    environment: Environment = Field("development", description="Deployment environment.")
    debug: bool = Field(False, description="Extra diagnostics; never in production.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Lowest level written."
    )
    log_format: Literal["json", "console"] = Field(
        "json", description="json (one object per line) or console (coloured, for people)."
    )
    service_version: str = Field("0.1.0", description="Version reported in logs, traces, /info.")
    host: str = Field("127.0.0.1", description="Interface to bind.")
    port: int = Field(8000, ge=1, le=65535, description="Port to bind.")
    graceful_timeout_seconds: float = Field(
        20.0, gt=0, description="How long in-flight requests may finish after SIGTERM."
    )
    shutdown_delay_seconds: float = Field(
        0.0, ge=0, description="After SIGTERM, seconds readiness reports 503 before draining."
    )
    max_request_body_mb: float = Field(1.0, gt=0, description="Largest request body accepted.")
    var_dir: Path = Field(Path("var"), description="Where local state lives (SQLite, keys).")
    otel_exporter_endpoint: str | None = Field(
        None, description="OTLP endpoint; unset means traces are not exported."
    )
    otel_exporter_protocol: Literal["http/protobuf", "grpc"] = Field(
        "http/protobuf", description="OTLP protocol."
    )
    otel_sample_ratio: float = Field(
        1.0, ge=0, le=1, description="Share of new traces sampled (parent decision wins)."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        module_dotenv = DotEnvSettingsSource(settings_cls, env_file=env_file())
        return (
            init_settings,
            env_settings,
            _GlobalEnvSource(settings_cls, cls.global_fields),
            module_dotenv,
            _GlobalDotEnvSource(settings_cls, cls.global_fields),
            file_secret_settings,
        )

    @property
    def service_name(self) -> str:
        return self.module or "intellipost"

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Self:
        if self.environment != "production":
            return self
        if self.debug:
            raise ConfigError(f"{self.env_name('debug')} must be false in production")
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if not isinstance(value, SecretStr):
                continue
            secret = value.get_secret_value()
            default = field.default
            default_secret = default.get_secret_value() if isinstance(default, SecretStr) else None
            if not secret.strip():
                raise ConfigError(f"{self.env_name(name)} is empty; set it for production")
            if secret == default_secret or secret in INSECURE_VALUES:
                raise ConfigError(
                    f"{self.env_name(name)} still has its development default; "
                    "set a real secret for production"
                )
        return self

    @classmethod
    def env_prefix(cls) -> str:
        return str(cls.model_config.get("env_prefix", GLOBAL_PREFIX))

    @classmethod
    def env_name(cls, field: str) -> str:
        """The variable a person sets for ``field`` (global form for global fields)."""
        prefix = GLOBAL_PREFIX if field in cls.global_fields else cls.env_prefix()
        return f"{prefix}{field}".upper()


INSECURE_VALUES = frozenset({"changeme", "change-me", "secret", "password", "dev", "development"})


def module_config(module: str) -> SettingsConfigDict:
    """`model_config` for a module: prefix ``INTELLIPOST_<MODULE>_``, root `.env`."""
    # An empty value (`INTELLIPOST_REDIS_URL=` copied from .env.example) means "unset".
    return SettingsConfigDict(
        env_prefix=f"{GLOBAL_PREFIX}{module.upper()}_",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
    )


class DatabaseMixin(BaseModel):
    """A relational database of the module's own (SQLite under var/ by default)."""

    database_url: str | None = Field(
        None,
        description="SQLAlchemy async URL; unset means sqlite+aiosqlite:///<var_dir>/<module>.db",
    )
    database_pool_size: int = Field(5, ge=1, description="Pooled connections (PostgreSQL).")
    database_max_overflow: int = Field(10, ge=0, description="Extra connections under load.")
    database_pool_timeout_seconds: float = Field(10.0, gt=0, description="Wait for a connection.")
    database_connect_timeout_seconds: float = Field(5.0, gt=0, description="Connect timeout.")
    database_statement_timeout_ms: int = Field(
        15000, ge=0, description="Server-side statement timeout (PostgreSQL); 0 disables."
    )
    database_echo: bool = Field(False, description="Log every SQL statement (debug).")
    auto_migrate: bool = Field(
        True, description="Apply migrations at startup; off where a migration job runs them."
    )


class RedisMixin(BaseModel):
    """A Redis for cache, rate limits and short-lived state (in-process when unset)."""

    redis_url: str | None = Field(
        None, description="redis:// URL; unset means an in-process store (single replica only)."
    )
    redis_key_prefix: str = Field("intellipost:", description="Namespace for every key.")
    redis_socket_timeout_seconds: float = Field(2.0, gt=0, description="Redis socket timeout.")


class ExternalServiceMixin(BaseModel):
    """How this module calls something outside it."""

    request_timeout_seconds: float = Field(10.0, gt=0, description="Per-request timeout.")
    max_retries: int = Field(3, ge=0, le=10, description="Retries of a failed idempotent call.")
    requests_per_minute: int = Field(200, ge=1, description="Outgoing request budget.")


class AuthMixin(BaseModel):
    """Verification of the user service's access tokens (JWKS)."""

    jwks_url: str = Field(
        "http://127.0.0.1:8001/.well-known/jwks.json",
        description="Where the user service publishes its public keys.",
    )
    jwt_issuer: str = Field("intellipost-user", description="Expected `iss` of access tokens.")
    jwt_audience: str = Field("intellipost", description="Expected `aud` of access tokens.")
    jwks_cache_seconds: int = Field(300, ge=1, description="How long fetched keys are trusted.")
    jwks_min_refresh_seconds: float = Field(
        10.0, ge=0, description="Fewest seconds between refetches on an unknown `kid`."
    )
