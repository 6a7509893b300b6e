"""The ai content service's ASGI app."""

from __future__ import annotations

from fastapi import FastAPI

from intellipost.ai_content.api import router
from intellipost.ai_content.cache import ContentCache
from intellipost.ai_content.categories import CategoryResolver
from intellipost.ai_content.config import AiContentConfig, get_config
from intellipost.ai_content.limits import Limiter, MemoryLimiter, RedisLimiter
from intellipost.ai_content.providers.base import Provider
from intellipost.ai_content.providers.gemini import GeminiProvider
from intellipost.ai_content.providers.local import LocalProvider
from intellipost.ai_content.providers.openai import OpenAIProvider
from intellipost.ai_content.repository import ContentRepository
from intellipost.ai_content.service import ContentService
from intellipost.shared.app import create_service_app
from intellipost.shared.db import Database
from intellipost.shared.kv import create_store, redis_client


def build_database(config: AiContentConfig) -> Database:
    return Database(config, migrations_package="intellipost.ai_content")


def build_providers(config: AiContentConfig) -> dict[str, Provider]:
    def secret(value: object) -> str | None:
        reveal = getattr(value, "get_secret_value", None)
        return reveal() if reveal else None

    return {
        "local": LocalProvider(),
        "openai": OpenAIProvider(
            base_url=config.openai_base_url,
            model=config.openai_model,
            api_key=secret(config.openai_api_key),
            temperature=config.openai_temperature,
            image_input=config.openai_image_input,
        ),
        "gemini": GeminiProvider(
            base_url=config.gemini_base_url,
            model=config.gemini_model,
            api_key=secret(config.gemini_api_key),
            temperature=config.gemini_temperature,
            image_input=config.gemini_image_input,
        ),
    }


def build_limiter(config: AiContentConfig) -> Limiter:
    redis = redis_client(config)
    if redis is None:
        return MemoryLimiter(
            max_concurrent=config.max_concurrent_requests,
            daily_limit=config.daily_request_limit,
        )
    return RedisLimiter(
        redis,
        f"{config.redis_key_prefix}ai_content:limits:",
        max_concurrent=config.max_concurrent_requests,
        daily_limit=config.daily_request_limit,
        # A lease outlives the longest call, so only a crashed holder ever lets it lapse.
        lease_seconds=config.request_timeout_seconds + 5,
    )


def create_app(config: AiContentConfig | None = None) -> FastAPI:
    config = config or get_config()
    database = build_database(config)
    cache = ContentCache(create_store(config, "ai_content:cache"), config.cache_ttl_seconds)
    limiter = build_limiter(config)
    service = ContentService(
        config=config,
        repository=ContentRepository(database),
        cache=cache,
        limiter=limiter,
        resolver=CategoryResolver(
            config.mercadolibre_url, timeout_seconds=config.category_timeout_seconds
        ),
        providers=build_providers(config),
    )

    async def close(_: FastAPI) -> None:
        await cache.aclose()
        await limiter.aclose()

    app = create_service_app(
        config,
        title="IntelliPost AI content service",
        description="Listing generation, quality control and caching.",
        routers=[router],
        database=database,
        on_shutdown=[close],
    )
    if config.redis_url:
        # The cache and the shared limits degrade without Redis; generation still works.
        app.state.health.add_check("redis", cache.ping, critical=False)
    app.state.content = service
    return app


app = create_app()
