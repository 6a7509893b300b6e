"""The user service's ASGI app."""

from __future__ import annotations

from fastapi import FastAPI

from intellipost.shared.app import create_service_app
from intellipost.shared.auth import TokenVerifier
from intellipost.shared.db import Database
from intellipost.shared.health import Health
from intellipost.user.api import router
from intellipost.user.config import UserConfig, get_config
from intellipost.user.keys import load_keyring
from intellipost.user.passwords import Passwords
from intellipost.user.service import UserService


def build_database(config: UserConfig) -> Database:
    return Database(config, migrations_package="intellipost.user")


def create_app(config: UserConfig | None = None) -> FastAPI:
    config = config or get_config()
    database = build_database(config)
    app = create_service_app(
        config,
        title="IntelliPost User service",
        description="Accounts, sessions and signing keys.",
        routers=[router],
        database=database,
    )
    # After the app is made, so logging is configured when a development key is generated.
    keyring = load_keyring(
        config.jwt_private_key.get_secret_value(), config.jwt_previous_public_key, config.var_dir
    )

    async def signing_key() -> str:
        return f"kid {keyring.kid} ({keyring.alg})"

    health: Health = app.state.health
    health.add_startup_check("signing_keys", signing_key)
    app.state.user_service = UserService(config, database, keyring, Passwords(config))
    # Our own tokens are checked with our own keys, never fetched over HTTP from ourselves.
    verifier: TokenVerifier = app.state.verifier
    verifier.jwks.set_keys(keyring.jwks())
    return app


app = create_app()
