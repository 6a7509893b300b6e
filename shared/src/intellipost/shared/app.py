"""`create_service_app`: every component wired the same way (logs, traces, health, errors)."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, NoReturn

from fastapi import APIRouter, FastAPI
from fastapi.telemetry import TelemetryConfig
from pydantic import ValidationError

from intellipost.shared.auth import verifier_for
from intellipost.shared.config import BaseModuleConfig, ConfigError
from intellipost.shared.correlation import CorrelationMiddleware
from intellipost.shared.db import Database
from intellipost.shared.errors import install_error_handlers
from intellipost.shared.health import Health
from intellipost.shared.http import close_service_client, get_service_client
from intellipost.shared.limits import MaxBodySizeMiddleware
from intellipost.shared.logging import configure_logging, get_structured_logger
from intellipost.shared.telemetry import instrument_fastapi, setup_telemetry, shutdown_telemetry

Hook = Callable[[FastAPI], Awaitable[None]]
NATIVE_TELEMETRY_OFF: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}


def load_config[C: BaseModuleConfig](cls: type[C]) -> C:
    """Build the module's settings, or stop the process with one clear line saying why."""
    try:
        return cls()
    except ConfigError as exc:
        _refuse(cls, str(exc))
    except ValidationError as exc:
        # pydantic wraps errors raised in validators; the first one names the setting.
        first = exc.errors()[0]
        cause = first.get("ctx", {}).get("error")
        if isinstance(cause, ConfigError):
            _refuse(cls, str(cause))
        loc = ".".join(str(p) for p in first.get("loc", ()))
        name = cls.env_name(loc) if loc else cls.__name__
        _refuse(cls, f"{name}: {first.get('msg', 'invalid value')}")


def _refuse(cls: type[BaseModuleConfig], message: str) -> NoReturn:
    sys.stderr.write(f"intellipost-{cls.module}: refusing to start: {message}\n")
    raise SystemExit(2)


def create_service_app(
    config: BaseModuleConfig,
    *,
    title: str,
    description: str = "",
    routers: Sequence[APIRouter] = (),
    database: Database | None = None,
    health: Health | None = None,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    edge: bool = True,
) -> FastAPI:
    """The component's FastAPI app.

    ``edge=False`` leaves out the correlation, size-guard and tracing layers for an app
    that is mounted behind them (the gateway builds its own stack around its proxy).
    """
    configure_logging(
        service=config.service_name,
        environment=config.environment,
        version=config.service_version,
        level=config.log_level,
        fmt=config.log_format,
    )
    log = get_structured_logger(config.service_name)
    setup_telemetry(config)
    health = health or Health(
        service=config.service_name,
        version=config.service_version,
        environment=config.environment,
        disk_path=config.var_dir if config.var_dir.exists() else config.var_dir.parent,
    )
    if database is not None:
        health.add_check("database", database.ping)
        if database.migrations_package:
            health.add_startup_check("migrations", database.check_migrated)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        began = time.perf_counter()
        get_service_client()
        if database is not None and database.migrations_package and _auto_migrate(config):
            await database.migrate()
        for hook in on_startup:
            await hook(app)
        log.info(
            "service started",
            port=config.port,
            startup_ms=round((time.perf_counter() - began) * 1000, 1),
        )
        try:
            yield
        finally:
            for hook in reversed(on_shutdown):
                await hook(app)
            await close_service_client()
            if database is not None:
                await database.dispose()
            shutdown_telemetry()
            log.info("service stopped")

    app = FastAPI(
        # FastAPI's native telemetry would trace every request a second time (next to the
        # OpenTelemetry instrumentation, or the gateway's own span) and export request
        # bodies and raw validation input to OTel logs, bypassing our redaction.
        telemetry=NATIVE_TELEMETRY_OFF,
        title=title,
        description=description,
        version=config.service_version,
        lifespan=lifespan,
        docs_url=None if config.is_production else "/docs",
        redoc_url=None,
        openapi_url=None if config.is_production else "/openapi.json",
    )
    app.state.config = config
    app.state.health = health
    app.state.database = database
    app.state.verifier = verifier_for(config)
    install_error_handlers(app)
    app.include_router(health.router())
    app.include_router(info_router(config, health))
    for router in routers:
        app.include_router(router)

    if edge:
        # Starlette wraps in reverse order of addition: correlation is the outermost of
        # ours, so a 413 from the size guard still carries the ids and gets its access line.
        app.add_middleware(
            MaxBodySizeMiddleware, max_bytes=int(config.max_request_body_mb * 1024 * 1024)
        )
        app.add_middleware(CorrelationMiddleware, service=config.service_name)
        instrument_fastapi(app)
    return app


def _auto_migrate(config: BaseModuleConfig) -> bool:
    return bool(getattr(config, "auto_migrate", False))


def info_router(config: BaseModuleConfig, health: Health) -> APIRouter:
    router = APIRouter(tags=["info"])

    @router.get("/info")
    async def info() -> dict[str, Any]:
        return {
            "name": config.service_name,
            "version": config.service_version,
            "environment": config.environment,
            "uptime_s": round(health.uptime_seconds, 1),
        }

    return router
