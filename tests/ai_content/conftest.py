"""Fixtures of the ai content tests: model servers over HTTP and an in-process service."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from intellipost.ai_content.cache import ContentCache
from intellipost.ai_content.categories import CategoryResolver
from intellipost.ai_content.config import AiContentConfig
from intellipost.ai_content.limits import build_limiter
from intellipost.ai_content.providers import build_providers
from intellipost.ai_content.repository import ContentRepository
from intellipost.ai_content.schemas import GenerateRequest
from intellipost.ai_content.service import ContentService
from intellipost.shared.db import Database
from intellipost.shared.http import close_service_client
from intellipost.shared.kv import create_store
from tests.ai_content.fakes import CategoryPredictor, ModelServer
from tests.support import free_port


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    server = ModelServer().serve()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def predictor() -> Iterator[CategoryPredictor]:
    server = CategoryPredictor().serve()
    try:
        yield server
    finally:
        server.close()


@dataclass
class Harness:
    service: ContentService
    config: AiContentConfig
    database: Database
    cache: ContentCache


Build = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Build]:
    """Builds the service as `main.create_app` wires it, with settings of the test's choice."""
    for key in list(os.environ):
        if key.startswith("INTELLIPOST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("INTELLIPOST_ENV_FILE", str(tmp_path / "absent.env"))
    made: list[Harness] = []

    async def _build(**settings: Any) -> Harness:
        settings.setdefault("database_url", f"sqlite+aiosqlite:///{tmp_path}/ai-{len(made)}.db")
        # Nothing listens there: category prediction falls back to the built-in map at once.
        settings.setdefault("mercadolibre_url", f"http://127.0.0.1:{free_port()}")
        settings.setdefault("environment", "test")
        config = AiContentConfig(**settings)
        database = Database(config, migrations_package="intellipost.ai_content")
        await database.migrate()
        cache = ContentCache(create_store(config, "ai_content:cache"), config.cache_ttl_seconds)
        service = ContentService(
            config=config,
            repository=ContentRepository(database),
            cache=cache,
            limiter=build_limiter(config),
            resolver=CategoryResolver(
                config.mercadolibre_url, timeout_seconds=config.category_timeout_seconds
            ),
            providers=build_providers(config),
        )
        harness = Harness(service, config, database, cache)
        made.append(harness)
        return harness

    try:
        yield _build
    finally:
        for harness in made:
            await harness.cache.aclose()
            await harness.service.limiter.aclose()
            await harness.database.dispose()
        await close_service_client()


def openai_settings(server: ModelServer, **extra: Any) -> dict[str, Any]:
    return {
        "primary_provider": "openai",
        "openai_base_url": server.openai_url,
        "openai_api_key": "sk-test-provider-key",
        "openai_model": "gpt-4o-mini",
        "request_timeout_seconds": 2.0,
        **extra,
    }


def nike(**changes: Any) -> GenerateRequest:
    body: dict[str, Any] = {
        "product_id": "prod-1",
        "prompt": "Zapatillas Nike Air Max 90 blancas talle 42, nuevas",
        "images": [{"id": "img-1", "width": 1200, "height": 1200, "format": "jpeg"}],
        "site": "MLA",
    }
    body.update(changes)
    return GenerateRequest.model_validate(body)
