"""The mercadolibre service's ASGI app."""

from __future__ import annotations

from fastapi import FastAPI

from intellipost.mercadolibre.api import router
from intellipost.mercadolibre.config import MercadoLibreConfig, get_config
from intellipost.shared.app import create_service_app
from intellipost.shared.db import Database


def build_database(config: MercadoLibreConfig) -> Database:
    return Database(config, migrations_package="intellipost.mercadolibre")


def create_app(config: MercadoLibreConfig | None = None) -> FastAPI:
    config = config or get_config()
    return create_service_app(
        config,
        title="IntelliPost MercadoLibre service",
        description="Marketplace connection, publishing and the shared rate limit.",
        routers=[router],
        database=build_database(config),
    )


app = create_app()
