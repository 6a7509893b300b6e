"""The mercadolibre service's ASGI app."""

from __future__ import annotations

from fastapi import FastAPI

from intellipost.mercadolibre.api import Services, router
from intellipost.mercadolibre.client import MercadoLibreClient
from intellipost.mercadolibre.config import MercadoLibreConfig, get_config
from intellipost.mercadolibre.crypto import TokenCipher
from intellipost.mercadolibre.locks import create_locks
from intellipost.mercadolibre.pictures import PictureLoader
from intellipost.mercadolibre.problems import install_problem_handlers
from intellipost.mercadolibre.ratelimit import create_throttle
from intellipost.mercadolibre.repository import ConnectionRepository, ListingRepository
from intellipost.mercadolibre.service import CategoryService, ConnectionService, ListingService
from intellipost.shared.app import create_service_app
from intellipost.shared.db import Database
from intellipost.shared.kv import create_store, redis_client


def build_database(config: MercadoLibreConfig) -> Database:
    return Database(config, migrations_package="intellipost.mercadolibre")


def create_app(config: MercadoLibreConfig | None = None) -> FastAPI:
    config = config or get_config()
    database = build_database(config)
    # Redis when configured (every replica shares the budget, locks and OAuth states),
    # otherwise in-process versions of the same pieces.
    redis = redis_client(config)
    prefix = f"{config.redis_key_prefix}mercadolibre:"
    store = create_store(config, "mercadolibre")
    throttle = create_throttle(
        redis,
        prefix=prefix,
        requests_per_minute=config.requests_per_minute,
        burst_limit=config.burst_limit,
        max_wait_seconds=config.rate_limit_max_wait_seconds,
    )
    locks = create_locks(redis, prefix + "lock:")
    client = MercadoLibreClient(config, throttle)
    connections = ConnectionService(
        config,
        ConnectionRepository(database),
        store,
        client,
        TokenCipher.from_config(config),
        locks,
    )
    categories = CategoryService(config, client, store)
    listings = ListingService(
        config,
        ListingRepository(database),
        connections,
        categories,
        client,
        PictureLoader(
            allowed_origins=config.picture_source_origins,
            max_bytes=int(config.max_picture_mb * 1_048_576),
        ),
        locks,
    )

    async def close(_app: FastAPI) -> None:
        await client.aclose()
        await store.aclose()
        if redis is not None:
            await redis.aclose()

    app = create_service_app(
        config,
        title="IntelliPost MercadoLibre service",
        description="Marketplace connection, publishing and the shared rate limit.",
        routers=[router],
        database=database,
        on_shutdown=[close],
    )
    app.state.services = Services(connections, categories, listings)
    install_problem_handlers(app)
    if redis is not None:
        app.state.health.add_check("redis", store.ping)
    app.state.health.add_check("mercadolibre_api", client.health, critical=False)
    return app


app = create_app()
