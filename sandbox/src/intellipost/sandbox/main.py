"""The MercadoLibre sandbox's ASGI app."""

from __future__ import annotations

from fastapi import FastAPI

from intellipost.sandbox import admin
from intellipost.sandbox.api import api, pages_router
from intellipost.sandbox.config import SandboxConfig, get_config
from intellipost.sandbox.errors import install_error_handlers
from intellipost.sandbox.faults import Gate
from intellipost.sandbox.store import Sandbox
from intellipost.shared.app import create_service_app


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    config = config or get_config()
    app = create_service_app(
        config,
        title="MercadoLibre sandbox",
        description="A local, in-memory stand-in of the MercadoLibre API.",
        routers=[api, pages_router, admin.router],
    )
    app.state.sandbox = Sandbox(config)
    app.state.gate = Gate(config)
    install_error_handlers(app)
    return app


app = create_app()
