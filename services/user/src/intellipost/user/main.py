"""The user service's ASGI app."""

from __future__ import annotations

from fastapi import FastAPI

from intellipost.shared.app import create_service_app
from intellipost.shared.db import Database
from intellipost.user.api import router
from intellipost.user.config import UserConfig, get_config


def build_database(config: UserConfig) -> Database:
    return Database(config, migrations_package="intellipost.user")


def create_app(config: UserConfig | None = None) -> FastAPI:
    config = config or get_config()
    return create_service_app(
        config,
        title="IntelliPost User service",
        description="Accounts, sessions and signing keys.",
        routers=[router],
        database=build_database(config),
    )


app = create_app()
