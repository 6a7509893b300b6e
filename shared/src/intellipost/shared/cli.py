"""The command line every component shares: ``serve`` (default) and ``migrate``."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar

from intellipost.shared.config import BaseModuleConfig
from intellipost.shared.db import Database
from intellipost.shared.logging import configure_logging, get_structured_logger
from intellipost.shared.server import serve

C = TypeVar("C", bound=BaseModuleConfig)


def run_cli[C: BaseModuleConfig](
    argv: Sequence[str],
    config: C,
    *,
    app: str,
    database: Callable[[C], Database] | None = None,
) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m intellipost.{config.service_name}")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate"])
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(app, config)
        return
    if database is None:
        parser.error("this component has no database to migrate")
    configure_logging(
        service=config.service_name,
        environment=config.environment,
        version=config.service_version,
        level=config.log_level,
        fmt=config.log_format,
    )
    db = database(config)

    async def _migrate() -> None:
        try:
            await db.migrate()
        finally:
            await db.dispose()

    asyncio.run(_migrate())
    get_structured_logger(config.service_name).info("migrations applied", revision=db.head())
