"""The ai content service's ASGI app."""

from __future__ import annotations

from fastapi import FastAPI

from intellipost.ai_content.api import router
from intellipost.ai_content.cache import ContentCache
from intellipost.ai_content.categories import CategoryResolver
from intellipost.ai_content.config import AiContentConfig, get_config
from intellipost.ai_content.limits import build_limiter
from intellipost.ai_content.providers import build_providers
from intellipost.ai_content.repository import ContentRepository
from intellipost.ai_content.service import ContentService
from intellipost.shared.app import create_service_app
from intellipost.shared.db import Database
from intellipost.shared.kv import create_store


def build_database(config: AiContentConfig) -> Database:
    return Database(config, migrations_package="intellipost.ai_content")


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
