"""Helpers for the mercadolibre service tests: starting it, connecting, a picture source."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.sandbox.support import approve, png
from tests.support import (
    Component,
    LocalHTTPServer,
    QuietHandler,
    TokenIssuer,
    base_env,
    free_port,
)

API = "/api/v1/mercadolibre"
# The development default of INTELLIPOST_MERCADOLIBRE_TOKEN_ENCRYPTION_KEY.
DEV_KEY = base64.b64decode("aW50ZWxsaXBvc3QtZGV2ZWxvcG1lbnQta2V5LTAwMDE=")


def service_env(
    tmp: Path, *, sandbox: Component, issuer: TokenIssuer, callback_port: int, **extra: str
) -> dict[str, str]:
    return base_env(
        tmp,
        INTELLIPOST_JWKS_URL=issuer.jwks_url,
        INTELLIPOST_MERCADOLIBRE_API_BASE_URL=sandbox.url,
        INTELLIPOST_MERCADOLIBRE_REDIRECT_URI=f"http://127.0.0.1:{callback_port}{API}/callback",
        INTELLIPOST_MERCADOLIBRE_RETRY_DELAY_SECONDS="0.05",
        INTELLIPOST_MERCADOLIBRE_MAX_RETRIES="3",
        **extra,
    )


def start_service(
    tmp: Path,
    *,
    sandbox: Component,
    issuer: TokenIssuer,
    name: str = "mercadolibre",
    port: int | None = None,
    callback_port: int | None = None,
    settings: Mapping[str, str] | None = None,
    **extra: str,
) -> Component:
    port = port or free_port()
    env = service_env(
        tmp,
        sandbox=sandbox,
        issuer=issuer,
        callback_port=callback_port or port,
        **{**(settings or {}), **extra},
    )
    return Component("mercadolibre", port, env, tmp / f"{name}.log").start(wait="/health/ready")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def connect(
    service: Component, token: str, *, site: str = "MLA", nickname: str = "TEST_SELLER"
) -> dict[str, Any]:
    """The whole OAuth dance: connect link, approval at the sandbox, callback."""
    started = httpx.get(f"{service.url}{API}/connect", params={"site": site}, headers=auth(token))
    assert started.status_code == 200, started.text
    location = approve(started.json()["authorization_url"], nickname=nickname, site_id=site)
    finished = httpx.get(location, timeout=30)
    assert finished.status_code == 200, finished.text
    body: dict[str, Any] = finished.json()
    return body


def listing(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "product_id": "prod-1",
        "title": "Samsung Galaxy S23 128 GB negro",
        "description": "Celular nuevo, en caja sellada, con garantía oficial.",
        "category_id": "MLA1055",
        "price": "850000.00",
        "currency": "ARS",
        "quantity": 2,
        "condition": "new",
        "listing_type": "gold_special",
        "pictures": [{"data": base64.b64encode(png(600, 600)).decode()}],
        "attributes": [
            {"id": "BRAND", "value_name": "Samsung"},
            {"id": "MODEL", "value_name": "Galaxy S23"},
        ],
    }
    body.update(changes)
    return body


@dataclass
class PictureSource:
    """Stands in for the product service's image URLs, which need the caller's token."""

    token: str
    pictures: dict[str, bytes] = field(default_factory=dict)
    seen_authorization: list[str | None] = field(default_factory=list)
    port: int = 0
    _server: LocalHTTPServer | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str) -> str:
        return f"{self.origin}/api/v1/products/prod-1/images/{name}?size=original"

    def serve(self) -> PictureSource:
        source = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                source.seen_authorization.append(self.headers.get("authorization"))
                name = self.path.split("?")[0].rsplit("/", 1)[-1]
                if self.headers.get("authorization") != f"Bearer {source.token}":
                    self.answer(401, json.dumps({"status": 401}).encode(), "application/json")
                elif name not in source.pictures:
                    self.answer(404, b"{}", "application/json")
                else:
                    self.answer(200, source.pictures[name], "image/png")

        self._server = LocalHTTPServer(Handler)
        self.port = self._server.port
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


async def connection_row(database_url: str, user_id: str) -> dict[str, Any]:
    """The stored connection, read straight from the service's database."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                text("SELECT * FROM connections WHERE user_id = :u"), {"u": user_id}
            )
            row = result.mappings().one()
            return dict(row)
    finally:
        await engine.dispose()


async def execute(database_url: str, sql: str, **params: Any) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(sql), params)
    finally:
        await engine.dispose()
