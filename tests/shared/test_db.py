"""Database wiring: migrations, readiness and startup checks on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from intellipost.ai_content.config import AiContentConfig
from intellipost.ai_content.models import AiContentBase
from intellipost.mercadolibre.config import MercadoLibreConfig
from intellipost.mercadolibre.models import MercadolibreBase
from intellipost.product.config import ProductConfig
from intellipost.product.models import ProductBase
from intellipost.shared.db import Database
from intellipost.user.config import UserConfig
from intellipost.user.models import UserBase


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


MODULES: dict[str, tuple[type[Any], type[Any]]] = {
    "user": (UserConfig, UserBase),
    "product": (ProductConfig, ProductBase),
    "mercadolibre": (MercadoLibreConfig, MercadolibreBase),
    "ai_content": (AiContentConfig, AiContentBase),
}


@pytest.mark.parametrize("module", sorted(MODULES))
async def test_each_modules_migrations_build_exactly_its_models(
    module: str, database_url: str
) -> None:
    config_class, base = MODULES[module]
    db = Database(
        config_class(database_url=database_url), migrations_package=f"intellipost.{module}"
    )
    try:
        await db.migrate()

        # Every module's models share one metadata; compare only this module's tables.
        tables = {m.local_table.name for m in base.registry.mappers if issubclass(m.class_, base)}

        def ours(obj: Any, name: str | None, kind: str, reflected: bool, other: Any) -> bool:
            table = obj if kind == "table" else getattr(obj, "table", None)
            return table is None or table.name in tables

        def differences(conn: Connection) -> list[Any]:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_object": ours}
            )
            return list(compare_metadata(context, base.metadata))

        async with db.engine.connect() as conn:
            assert await conn.run_sync(differences) == []
    finally:
        await db.dispose()
