"""Database wiring: migrations, readiness and startup checks on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from intellipost.shared.db import Database
from intellipost.user.config import UserConfig


def _config(url: str) -> UserConfig:
    return UserConfig(database_url=url)


async def test_migrate_brings_the_schema_to_head_and_startup_check_passes(
    database_url: str,
) -> None:
    db = Database(_config(database_url), migrations_package="intellipost.user")
    try:
        with pytest.raises(RuntimeError, match="schema at None"):
            await db.check_migrated()
        await db.migrate()
        assert await db.current_revision() == db.head()
        assert "revision" in await db.check_migrated()
        assert await db.ping() in {"sqlite", "postgresql"}
        # Running it again is a no-op, not an error.
        await db.migrate()
    finally:
        await db.dispose()


async def test_sessions_reach_the_modules_own_database(database_url: str) -> None:
    db = Database(_config(database_url), migrations_package="intellipost.user")
    try:
        await db.migrate()
        async with db.session() as session:
            version = (
                await session.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar()
        assert version == db.head()
    finally:
        await db.dispose()


def test_default_url_is_a_sqlite_file_under_the_var_dir(tmp_path: Path) -> None:
    config = UserConfig(var_dir=tmp_path / "state")
    assert Database(config).url == f"sqlite+aiosqlite:///{tmp_path}/state/user.db"
