"""Settings of the AI content service (``INTELLIPOST_AI_CONTENT_*``)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field

from intellipost.shared.app import load_config
from intellipost.shared.config import (
    AuthMixin,
    BaseModuleConfig,
    DatabaseMixin,
    ExternalServiceMixin,
    RedisMixin,
    module_config,
)

Provider = Literal["local", "openai", "gemini"]


class AiContentConfig(BaseModuleConfig, DatabaseMixin, RedisMixin, ExternalServiceMixin, AuthMixin):
    model_config = module_config("ai_content")
    module = "ai_content"

    port: int = Field(8004, ge=1, le=65535, description="Port to bind.")
    primary_provider: Provider = Field("local", description="local, openai or gemini.")
    fallback_provider: Provider | None = Field(
        None, description="Provider used when the primary fails; unset means none."
    )
    quality_score_threshold: float = Field(
        0.7, ge=0, le=1, description="Below this score a version needs review."
    )
    max_title_length: int = Field(
        60, ge=10, le=255, description="Title limit when the category gives none."
    )
    min_description_length: int = Field(80, ge=0, description="Shortest description accepted.")
    max_description_length: int = Field(5000, ge=100, description="Longest description accepted.")
    default_language: Literal["es", "pt", "en"] = Field(
        "es", description="Language when neither request nor site says."
    )
    cache_ttl_hours: float = Field(24.0, gt=0, description="How long identical input is cached.")
    mercadolibre_url: str = Field(
        "http://127.0.0.1:8003", description="MercadoLibre service (category prediction)."
    )


@lru_cache
def get_config() -> AiContentConfig:
    return load_config(AiContentConfig)
