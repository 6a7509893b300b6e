"""The ai content service's ASGI app."""

from __future__ import annotations

from fastapi import FastAPI

from intellipost.ai_content.api import router
from intellipost.ai_content.config import AiContentConfig, get_config
from intellipost.shared.app import create_service_app
from intellipost.shared.db import Database


def build_database(config: AiContentConfig) -> Database:
    return Database(config, migrations_package="intellipost.ai_content")


def create_app(config: AiContentConfig | None = None) -> FastAPI:
    config = config or get_config()
    return create_service_app(
        config,
        title="IntelliPost AI content service",
        description="Listing generation, quality control and caching.",
        routers=[router],
        database=build_database(config),
    )


app = create_app()
