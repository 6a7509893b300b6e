"""Content providers: the embedded rule-based generator and the LLM APIs behind one contract."""

from __future__ import annotations

from intellipost.ai_content.config import AiContentConfig
from intellipost.ai_content.providers.base import Provider
from intellipost.ai_content.providers.gemini import GeminiProvider
from intellipost.ai_content.providers.local import LocalProvider
from intellipost.ai_content.providers.openai import OpenAIProvider


def build_providers(config: AiContentConfig) -> dict[str, Provider]:
    """Every provider by name; the service picks the primary and fallback from them."""
    openai_key = config.openai_api_key.get_secret_value() if config.openai_api_key else None
    gemini_key = config.gemini_api_key.get_secret_value() if config.gemini_api_key else None
    return {
        "local": LocalProvider(),
        "openai": OpenAIProvider(
            base_url=config.openai_base_url,
            model=config.openai_model,
            api_key=openai_key,
            temperature=config.openai_temperature,
            image_input=config.openai_image_input,
        ),
        "gemini": GeminiProvider(
            base_url=config.gemini_base_url,
            model=config.gemini_model,
            api_key=gemini_key,
            temperature=config.gemini_temperature,
            image_input=config.gemini_image_input,
        ),
    }
