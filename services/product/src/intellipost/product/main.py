"""The product service's ASGI app."""

from __future__ import annotations

from fastapi import FastAPI

from intellipost.product.api import router
from intellipost.product.config import ProductConfig, get_config
from intellipost.shared.app import create_service_app
from intellipost.shared.db import Database


def build_database(config: ProductConfig) -> Database:
    return Database(config, migrations_package="intellipost.product")


def create_app(config: ProductConfig | None = None) -> FastAPI:
    config = config or get_config()
    return create_service_app(
        config,
        title="IntelliPost Product service",
        description="Products, images and the listing lifecycle.",
        routers=[router],
        database=build_database(config),
    )


app = create_app()
