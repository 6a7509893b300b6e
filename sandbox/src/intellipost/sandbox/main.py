"""The MercadoLibre sandbox's ASGI app."""

from __future__ import annotations

from fastapi import FastAPI

from intellipost.sandbox.api import router
from intellipost.sandbox.config import SandboxConfig, get_config
from intellipost.shared.app import create_service_app


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    config = config or get_config()
    return create_service_app(
        config,
        title="MercadoLibre sandbox",
        description="A local, in-memory stand-in of the MercadoLibre API.",
        routers=[router],
    )


app = create_app()
