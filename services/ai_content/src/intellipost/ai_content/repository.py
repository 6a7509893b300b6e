"""All SQL of the ai content service: content versions by owner and product."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from intellipost.ai_content.models import ContentVersion
from intellipost.shared.db import Database

# Two requests for one product may race for the same version number; the unique
# constraint decides and the loser takes the next number.
INSERT_ATTEMPTS = 5


class ContentRepository:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def insert_next(self, **values: Any) -> ContentVersion:
        """Store a new version numbered after the product's latest one."""
        owner_id, product_id = values["owner_id"], values["product_id"]
        for attempt in range(INSERT_ATTEMPTS):
            async with self.database.session() as session:
                latest = await session.scalar(
                    select(func.max(ContentVersion.version)).where(
                        ContentVersion.owner_id == owner_id,
                        ContentVersion.product_id == product_id,
                    )
                )
                row = ContentVersion(**values, version=(latest or 0) + 1)
                session.add(row)
                try:
                    await session.commit()
                except IntegrityError:
                    await session.rollback()
                    if attempt == INSERT_ATTEMPTS - 1:
                        raise
                    continue
                return row
        raise AssertionError("unreachable")

    async def get(self, owner_id: str, version_id: str) -> ContentVersion | None:
        async with self.database.session() as session:
            return await session.scalar(
                select(ContentVersion).where(
                    ContentVersion.id == version_id, ContentVersion.owner_id == owner_id
                )
            )

    async def list_for_product(self, owner_id: str, product_id: str) -> list[ContentVersion]:
        async with self.database.session() as session:
            rows = await session.scalars(
                select(ContentVersion)
                .where(
                    ContentVersion.owner_id == owner_id,
                    ContentVersion.product_id == product_id,
                )
                .order_by(ContentVersion.version.desc())
            )
            return list(rows)

    async def latest(self, owner_id: str, product_id: str) -> ContentVersion | None:
        async with self.database.session() as session:
            return await session.scalar(
                select(ContentVersion)
                .where(
                    ContentVersion.owner_id == owner_id,
                    ContentVersion.product_id == product_id,
                )
                .order_by(ContentVersion.version.desc())
                .limit(1)
            )
