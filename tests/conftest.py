"""Fixtures shared by every test: database backends, Redis, temporary state."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support import (
    REDIS_URL,
    create_pg_database,
    drop_pg_database,
    redis_available,
    unavailable,
)


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No INTELLIPOST_* from the developer's shell or `.env` reaches the settings."""
    for key in list(os.environ):
        if key.startswith("INTELLIPOST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("INTELLIPOST_ENV_FILE", str(tmp_path / "absent.env"))
    return tmp_path


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database on this machine's server, dropped afterwards."""
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """The same test against the embedded default (SQLite) and against PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "test.db"
        yield f"sqlite+aiosqlite:///{path}"
        return
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


@pytest.fixture
async def redis_url() -> str:
    if not await redis_available():
        unavailable(f"Redis at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture
def key_prefix() -> str:
    """A Redis key namespace of this test's own."""
    return f"intellipost-test:{uuid.uuid4().hex[:10]}:"
