"""The product service's ASGI app."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from intellipost.product.api import router
from intellipost.product.clients import AiContentClient, MercadoLibreClient
from intellipost.product.config import ProductConfig, get_config
from intellipost.product.service import ProductService
from intellipost.product.storage import create_storage
from intellipost.product.tasks import BackgroundWork
from intellipost.shared.app import create_service_app
from intellipost.shared.db import Database


def build_database(config: ProductConfig) -> Database:
    return Database(config, migrations_package="intellipost.product")


def create_app(config: ProductConfig | None = None) -> FastAPI:
    config = config or get_config()
    database = build_database(config)
    storage = create_storage(config)
    work = BackgroundWork(
        database,
        lease_seconds=config.task_lease_seconds,
        # Leave half the graceful period to uvicorn's own draining of requests.
        drain_seconds=config.graceful_timeout_seconds / 2,
    )
    products = ProductService(
        config,
        database,
        storage,
        work,
        AiContentClient(config.ai_content_url, config.ai_timeout_seconds),
        MercadoLibreClient(config.mercadolibre_url, config.mercadolibre_timeout_seconds),
    )

    async def start_work(_: FastAPI) -> None:
        # After the migrations: products a dead process left in processing/publishing fail
        # with a reason the seller can act on.
        await work.start()
        # Housekeeping starts a minute after a start, so a fleet redeployed more often than
        # a job's period still runs it.
        work.every(
            "idempotency-key-purge", 3600.0, products.purge_expired_keys, first_after_seconds=60.0
        )
        if config.orphan_sweep_minutes:
            period = config.orphan_sweep_minutes * 60
            grace = timedelta(minutes=config.orphan_grace_minutes)
            work.every(
                "orphan-sweep",
                period,
                lambda: products.sweep_orphan_files(grace),
                first_after_seconds=min(period, 60.0),
            )

    async def stop_work(_: FastAPI) -> None:
        await work.stop()
        storage.close()

    app = create_service_app(
        config,
        title="IntelliPost Product service",
        description="Products, images and the listing lifecycle.",
        routers=[router],
        database=database,
        on_startup=[start_work],
        on_shutdown=[stop_work],
    )
    # Object storage degrades the service (no uploads, no pictures) but reads still work.
    app.state.health.add_check("storage", storage.ping, critical=False)
    app.state.products = products
    return app


app = create_app()
