"""Settings of the MercadoLibre service (``INTELLIPOST_MERCADOLIBRE_*``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr

from intellipost.shared.app import load_config
from intellipost.shared.config import (
    AuthMixin,
    BaseModuleConfig,
    DatabaseMixin,
    ExternalServiceMixin,
    RedisMixin,
    module_config,
)


class MercadoLibreConfig(
    BaseModuleConfig, DatabaseMixin, RedisMixin, ExternalServiceMixin, AuthMixin
):
    model_config = module_config("mercadolibre")
    module = "mercadolibre"

    port: int = Field(8003, ge=1, le=65535, description="Port to bind.")
    client_id: str = Field("intellipost-dev", description="MercadoLibre application id.")
    client_secret: SecretStr = Field(
        SecretStr("sandbox-dev-secret"), description="MercadoLibre application secret."
    )
    api_base_url: str = Field(
        "http://127.0.0.1:8010",
        description="MercadoLibre API; https://api.mercadolibre.com in production.",
    )
    requests_per_minute: int = Field(
        200, ge=1, description="Calls to MercadoLibre per minute, across every replica."
    )
    burst_limit: int = Field(20, ge=1, description="Calls allowed at once above the steady rate.")
    max_retries: int = Field(3, ge=0, le=10, description="Retries of a transient failure.")
    retry_delay_seconds: float = Field(1.0, ge=0, description="First retry delay.")
    backoff_multiplier: float = Field(2.0, ge=1, description="Delay growth per retry.")


@lru_cache
def get_config() -> MercadoLibreConfig:
    return load_config(MercadoLibreConfig)
