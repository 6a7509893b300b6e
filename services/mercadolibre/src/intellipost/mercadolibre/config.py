"""Settings of the MercadoLibre service (``INTELLIPOST_MERCADOLIBRE_*``)."""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from intellipost.shared.app import load_config
from intellipost.shared.config import (
    AuthMixin,
    BaseModuleConfig,
    DatabaseMixin,
    ExternalServiceMixin,
    RedisMixin,
    module_config,
)

# base64 of "intellipost-development-key-0001": fine on a laptop, refused in production.
DEV_TOKEN_KEY = "aW50ZWxsaXBvc3QtZGV2ZWxvcG1lbnQta2V5LTAwMDE="  # noqa: S105


def decode_key(value: str) -> bytes:
    """The 32 raw bytes of an AES-256 key given as base64 (standard or URL-safe)."""
    text = value.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("must be base64 of 32 bytes") from exc
    if len(raw) != 32:
        raise ValueError(f"must be base64 of 32 bytes (got {len(raw)})")
    return raw


class MercadoLibreConfig(
    BaseModuleConfig, DatabaseMixin, RedisMixin, ExternalServiceMixin, AuthMixin
):
    model_config = module_config("mercadolibre")
    module = "mercadolibre"

    port: int = Field(8003, ge=1, le=65535, description="Port to bind.")
    max_request_body_mb: float = Field(
        40.0, gt=0, description="Largest request body (listings may carry base64 pictures)."
    )
    client_id: str = Field("intellipost-dev", description="MercadoLibre application id.")
    client_secret: SecretStr = Field(
        SecretStr("sandbox-dev-secret"), description="MercadoLibre application secret."
    )
    api_base_url: str = Field(
        "http://127.0.0.1:8010",
        description="MercadoLibre API; https://api.mercadolibre.com in production.",
    )
    auth_base_url: str | None = Field(
        None,
        description="Where sellers approve the app (/authorization is appended); unset means "
        "the site's auth host for api.mercadolibre.com, else api_base_url (the sandbox).",
    )
    redirect_uri: str = Field(
        "http://localhost:8000/api/v1/mercadolibre/callback",
        description="OAuth callback registered with the app (the gateway's public route).",
    )
    token_encryption_key: SecretStr = Field(
        SecretStr(DEV_TOKEN_KEY),
        description="AES-256-GCM key for tokens at rest: base64 of 32 random bytes.",
    )
    token_refresh_margin_seconds: int = Field(
        300, ge=0, description="Refresh an access token this long before it expires."
    )
    refresh_lock_seconds: float = Field(
        30.0, gt=0, description="Longest a replica holds (or waits for) a token refresh."
    )
    oauth_state_ttl_seconds: int = Field(
        600, ge=1, description="How long a connect link (state + PKCE verifier) is valid."
    )
    requests_per_minute: int = Field(
        200, ge=1, description="Calls to MercadoLibre per minute, across every replica."
    )
    burst_limit: int = Field(20, ge=1, description="Calls allowed at once above the steady rate.")
    rate_limit_max_wait_seconds: float = Field(
        5.0, ge=0, description="Longest a call waits for the budget before the caller gets 429."
    )
    max_retries: int = Field(3, ge=0, le=10, description="Retries of a transient failure.")
    retry_delay_seconds: float = Field(1.0, ge=0, description="First retry delay.")
    backoff_multiplier: float = Field(2.0, ge=1, description="Delay growth per retry.")
    category_cache_seconds: int = Field(
        3600, ge=0, description="How long category settings and attributes are cached."
    )
    publish_lock_seconds: float = Field(
        120.0, gt=0, description="Longest one publication holds its Idempotency-Key."
    )
    max_picture_mb: float = Field(10.0, gt=0, description="Largest picture sent to MercadoLibre.")
    picture_source_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [
            "http://127.0.0.1:8002",
            "http://localhost:8002",
            "http://127.0.0.1:8000",
            "http://localhost:8000",
        ],
        description="Origins picture URLs may come from (the caller's token goes along), "
        "comma separated.",
    )

    @field_validator("picture_source_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip().rstrip("/") for part in value.split(",") if part.strip()]
        return value

    @field_validator("token_encryption_key")
    @classmethod
    def _check_key(cls, value: SecretStr) -> SecretStr:
        decode_key(value.get_secret_value())
        return value


@lru_cache
def get_config() -> MercadoLibreConfig:
    return load_config(MercadoLibreConfig)
