"""Fixtures of the user-service tests: the service on a real database, with a clock to move."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from intellipost.shared.db import Database
from intellipost.user.config import UserConfig
from intellipost.user.keys import KeyRing, build_keyring
from intellipost.user.passwords import Passwords
from intellipost.user.service import UserService

# Argon2id at its cheapest: the tests are about the rules, not the cost.
FAST_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_cost_kib": 1024, "argon2_parallelism": 1}
FAST_ARGON2_ENV = {
    "INTELLIPOST_USER_ARGON2_TIME_COST": "1",
    "INTELLIPOST_USER_ARGON2_MEMORY_COST_KIB": "1024",
    "INTELLIPOST_USER_ARGON2_PARALLELISM": "1",
}
GOOD_PASSWORD = "Corr3ct-Horse!"


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Stack:
    """The user service's rules over a migrated database of the test's own."""

    config: UserConfig
    database: Database
    keyring: KeyRing
    clock: Clock
    service: UserService

    def variant(self, **overrides: Any) -> UserService:
        """The same database and keys under other settings (another replica, new costs)."""
        config = self.config.model_copy(update=overrides)
        return UserService(config, self.database, self.keyring, Passwords(config), clock=self.clock)


def make_config(tmp_path: Path, database_url: str, **overrides: Any) -> UserConfig:
    settings: dict[str, Any] = {
        "database_url": database_url,
        "var_dir": tmp_path / "var",
        "environment": "test",
        **FAST_ARGON2,
        **overrides,
    }
    return UserConfig(**settings)


@pytest.fixture
async def stack(database_url: str, tmp_path: Path, isolated_env: Path) -> AsyncIterator[Stack]:
    config = make_config(tmp_path, database_url, max_login_attempts=3, lockout_duration_minutes=15)
    database = Database(config, migrations_package="intellipost.user")
    await database.migrate()
    keyring = build_keyring(Ed25519PrivateKey.generate())
    clock = Clock()
    service = UserService(config, database, keyring, Passwords(config), clock=clock)
    try:
        yield Stack(config, database, keyring, clock, service)
    finally:
        await database.dispose()
