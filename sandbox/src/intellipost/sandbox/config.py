"""Settings of the MercadoLibre sandbox (``INTELLIPOST_SANDBOX_*``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr

from intellipost.shared.app import load_config
from intellipost.shared.config import BaseModuleConfig, module_config


class SandboxConfig(BaseModuleConfig):
    model_config = module_config("sandbox")
    module = "sandbox"

    port: int = Field(8010, ge=1, le=65535, description="Port to bind.")
    max_request_body_mb: float = Field(12.0, gt=0, description="Largest upload (pictures).")
    public_url: str = Field(
        "http://127.0.0.1:8010",
        description="Base of the links the sandbox hands out (permalinks, picture URLs).",
    )
    client_id: str = Field(
        "intellipost-dev", description="Application id the sandbox accepts (one app)."
    )
    client_secret: SecretStr = Field(
        SecretStr("sandbox-dev-secret"), description="Secret of that application."
    )
    access_token_ttl_seconds: int = Field(
        21600, ge=1, description="Lifetime of access tokens (MercadoLibre: 6 hours)."
    )
    rate_limit_per_minute: int = Field(
        1500, ge=1, description="Calls per minute per app before answering 429."
    )
    latency_ms: int = Field(0, ge=0, description="Injected delay before every API answer.")
    error_rate: float = Field(
        0.0, ge=0, le=1, description="Share of API calls answered with error_status."
    )
    error_status: int = Field(500, ge=400, le=599, description="Status of injected errors.")


@lru_cache
def get_config() -> SandboxConfig:
    return load_config(SandboxConfig)
