"""Settings of the AI content service (``INTELLIPOST_AI_CONTENT_*``)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator

from intellipost.shared.app import load_config
from intellipost.shared.config import (
    AuthMixin,
    BaseModuleConfig,
    ConfigError,
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
        "es", description="Listing language on the Spanish-speaking sites when a request says none."
    )
    cache_ttl_hours: float = Field(24.0, gt=0, description="How long identical input is cached.")
    mercadolibre_url: str = Field(
        "http://127.0.0.1:8003", description="MercadoLibre service (category prediction)."
    )
    category_timeout_seconds: float = Field(
        2.0, gt=0, description="Longest wait for a category prediction (then the built-in map)."
    )
    generation_timeout_seconds: float = Field(
        25.0,
        gt=0,
        description="Time budget of one generate call across providers, retries and fallback.",
    )
    max_concurrent_requests: int = Field(
        4, ge=1, description="Provider calls in flight at once (across replicas with Redis)."
    )
    daily_request_limit: int = Field(
        1000, ge=0, description="Paid provider calls per UTC day (all replicas); 0 = no limit."
    )
    openai_base_url: str = Field(
        "https://api.openai.com/v1",
        description="OpenAI-compatible API root (OpenAI, Ollama http://host:11434/v1, vLLM).",
    )
    openai_model: str = Field("gpt-4o-mini", description="Chat model of the OpenAI-compatible API.")
    openai_api_key: SecretStr | None = Field(
        None, description="Bearer key; required in production when openai is selected."
    )
    openai_temperature: float = Field(0.2, ge=0, le=2, description="Sampling temperature.")
    openai_image_input: bool = Field(
        True, description="Send photos as image inputs (off for text-only models)."
    )
    gemini_base_url: str = Field(
        "https://generativelanguage.googleapis.com/v1beta", description="Gemini REST API root."
    )
    gemini_model: str = Field("gemini-2.0-flash", description="Gemini model.")
    gemini_api_key: SecretStr | None = Field(
        None, description="API key; required in production when gemini is selected."
    )
    gemini_temperature: float = Field(0.2, ge=0, le=2, description="Sampling temperature.")
    gemini_image_input: bool = Field(True, description="Send photos as image inputs.")

    @model_validator(mode="after")
    def _selected_provider_has_its_key(self) -> Self:
        # A key is a secret only for the provider in use: an empty OpenAI key is fine while
        # the fleet runs on Gemini or the local generator.
        if not self.is_production:
            return self
        for provider in (self.primary_provider, self.fallback_provider):
            if provider not in ("openai", "gemini"):
                continue
            key = self.openai_api_key if provider == "openai" else self.gemini_api_key
            if key is None or not key.get_secret_value().strip():
                name = self.env_name(f"{provider}_api_key")
                raise ConfigError(
                    f"{name} is empty but {provider} is selected; set it for production"
                )
        return self

    @property
    def cache_ttl_seconds(self) -> float:
        return self.cache_ttl_hours * 3600


@lru_cache
def get_config() -> AiContentConfig:
    return load_config(AiContentConfig)
