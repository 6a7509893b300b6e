"""Async SQLAlchemy engine per module, Alembic migrations, and the readiness check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import DateTime, event, text
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

from intellipost.shared.config import DatabaseMixin
from intellipost.shared.logging import get_structured_logger

log = get_structured_logger("shared.db")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both backends.

    SQLite has no time zones: SQLAlchemy would store and return naive values, which cannot
    be compared with aware ones. This stores naive UTC there and hands back aware UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Subclass per module (each module has its own metadata and database)."""

    __abstract__ = True


def database_url(config: DatabaseMixin) -> str:
    """The configured URL, else a SQLite file named for the module under its var dir."""
    if config.database_url:
        return config.database_url
    var_dir: Path = getattr(config, "var_dir", Path("var"))
    name: str = getattr(config, "module", "") or "intellipost"
    return f"sqlite+aiosqlite:///{var_dir / (name + '.db')}"


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # WAL lets readers and one writer work at once; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class Database:
    """One engine and session factory for a module's own database."""

    def __init__(self, config: DatabaseMixin, migrations_package: str | None = None) -> None:
        self.url = database_url(config)
        self.migrations_package = migrations_package
        self.config = config
        parsed = make_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": config.database_echo, "pool_pre_ping": True}
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        else:
            server_settings = {"application_name": "intellipost"}
            if config.database_statement_timeout_ms:
                server_settings["statement_timeout"] = str(config.database_statement_timeout_ms)
            kwargs.update(
                pool_size=config.database_pool_size,
                max_overflow=config.database_max_overflow,
                pool_timeout=config.database_pool_timeout_seconds,
                connect_args={
                    "timeout": config.database_connect_timeout_seconds,
                    "server_settings": server_settings,
                },
            )
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            yield session

    async def ping(self) -> str:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return self.engine.dialect.name

    async def dispose(self) -> None:
        await self.engine.dispose()

    def alembic_config(self) -> AlembicConfig:
        if not self.migrations_package:
            raise RuntimeError("this database has no migrations package")
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", f"{self.migrations_package}:migrations")
        cfg.attributes["database_url"] = self.url
        return cfg

    async def migrate(self) -> None:
        """Upgrade to head (in a thread: Alembic's env runs its own event loop)."""
        cfg = self.alembic_config()
        await asyncio.to_thread(command.upgrade, cfg, "head")
        log.info("database migrated", backend=self.engine.dialect.name, revision=self.head())

    def head(self) -> str | None:
        return ScriptDirectory.from_config(self.alembic_config()).get_current_head()

    async def current_revision(self) -> str | None:
        def _current(conn: Connection) -> str | None:
            return MigrationContext.configure(conn).get_current_revision()

        async with self.engine.connect() as conn:
            return await conn.run_sync(_current)

    async def check_migrated(self) -> str:
        """Startup check: the schema is at the code's head revision."""
        current, head = await self.current_revision(), self.head()
        if current != head:
            raise RuntimeError(f"schema at {current}, code expects {head}")
        return f"revision {head}"
