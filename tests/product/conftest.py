"""The product service as a real process next to the real AI content service; its database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from intellipost.product.config import ProductConfig
from intellipost.shared.db import Database
from tests.support import (
    Component,
    TokenIssuer,
    base_env,
    create_pg_database,
    drop_pg_database,
    free_port,
)


@dataclass
class Stack:
    product: Component
    ai_content: Component
    issuer: TokenIssuer
    media: Path
    backend: str

    @property
    def url(self) -> str:
        return self.product.url

    def token(self, user: str | None = None) -> str:
        return self.issuer.token(user or f"seller-{uuid.uuid4().hex[:8]}", ttl=3600)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """Product + AI content on the embedded default or on PostgreSQL.

    The MercadoLibre service is deliberately absent (a closed port): publishing from here
    fails the way it does when that service is down. The whole flow is in tests/e2e.
    """
    tmp = tmp_path_factory.mktemp(f"product-{request.param}")
    pg_url = await create_pg_database() if request.param == "postgresql" else None
    issuer = TokenIssuer().serve()
    ai_port = free_port()
    media = tmp / "media"
    extra = {"INTELLIPOST_PRODUCT_DATABASE_URL": pg_url} if pg_url else {}
    env = base_env(
        tmp,
        INTELLIPOST_JWKS_URL=issuer.jwks_url,
        # Category prediction falls back to the built-in map at once.
        INTELLIPOST_AI_CONTENT_MERCADOLIBRE_URL=f"http://127.0.0.1:{free_port()}",
        INTELLIPOST_PRODUCT_AI_CONTENT_URL=f"http://127.0.0.1:{ai_port}",
        INTELLIPOST_PRODUCT_MERCADOLIBRE_URL=f"http://127.0.0.1:{free_port()}",
        INTELLIPOST_PRODUCT_MEDIA_DIR=str(media),
        **extra,
    )
    ai_content = Component("ai_content", ai_port, env, tmp / "ai_content.log")
    product = Component("product", free_port(), env, tmp / "product.log")
    started: list[Component] = []
    try:
        for component in (ai_content, product):
            component.start(wait="/health/ready")
            started.append(component)
        yield Stack(product, ai_content, issuer, media, request.param)
    finally:
        for component in reversed(started):
            component.stop()
        issuer.close()
        if pg_url:
            await drop_pg_database(pg_url)


@pytest.fixture
async def database(database_url: str, isolated_env: Path) -> AsyncIterator[Database]:
    config = ProductConfig(database_url=database_url, var_dir=isolated_env / "var")
    db = Database(config, migrations_package="intellipost.product")
    await db.migrate()
    try:
        yield db
    finally:
        await db.dispose()
