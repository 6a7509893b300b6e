"""All SQL of the mercadolibre service: connections and listings.

Each method is its own short transaction: publishing interleaves these writes with calls
to MercadoLibre, and no transaction stays open across a network call.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from intellipost.mercadolibre.models import Connection, Listing
from intellipost.shared.db import Database


def utcnow() -> datetime:
    return datetime.now(UTC)


class ConnectionRepository:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def get(self, user_id: str) -> Connection | None:
        async with self.database.session() as session:
            return await session.get(Connection, user_id)

    async def save(self, connection: Connection) -> Connection:
        """Insert, or replace the user's previous connection (reconnecting)."""
        async with self.database.session() as session:
            merged = await session.merge(connection)
            await session.commit()
            return merged

    async def update_tokens(
        self,
        user_id: str,
        *,
        access_token: str,
        refresh_token: str,
        access_expires_at: datetime,
        scopes: str,
    ) -> None:
        async with self.database.session() as session:
            await session.execute(
                update(Connection)
                .where(Connection.user_id == user_id)
                .values(
                    access_token=access_token,
                    refresh_token=refresh_token,
                    access_expires_at=access_expires_at,
                    scopes=scopes,
                    status="active",
                    refreshed_at=utcnow(),
                )
            )
            await session.commit()

    async def mark_revoked(self, user_id: str) -> None:
        async with self.database.session() as session:
            await session.execute(
                update(Connection).where(Connection.user_id == user_id).values(status="revoked")
            )
            await session.commit()

    async def delete(self, user_id: str) -> bool:
        async with self.database.session() as session:
            result = await session.execute(delete(Connection).where(Connection.user_id == user_id))
            await session.commit()
            return bool(getattr(result, "rowcount", 0))


class ListingRepository:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def by_key(self, user_id: str, key: str) -> Listing | None:
        async with self.database.session() as session:
            result = await session.execute(
                select(Listing).where(Listing.user_id == user_id, Listing.idempotency_key == key)
            )
            return result.scalar_one_or_none()

    async def by_item(self, user_id: str, item_id: str) -> Listing | None:
        async with self.database.session() as session:
            result = await session.execute(
                select(Listing).where(Listing.user_id == user_id, Listing.item_id == item_id)
            )
            return result.scalars().first()

    async def claim(self, listing: Listing) -> Listing | None:
        """Insert a new publication; None when the key is already taken (the unique index)."""
        async with self.database.session() as session:
            session.add(listing)
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                return None
            return listing

    async def record(self, listing_id: str, **changes: Any) -> None:
        """Save a step's outcome (picture ids, item, description) the moment it is known."""
        async with self.database.session() as session:
            await session.execute(
                update(Listing)
                .where(Listing.id == listing_id)
                .values(**changes, updated_at=utcnow())
            )
            await session.commit()

    async def delete(self, listing_id: str) -> None:
        async with self.database.session() as session:
            await session.execute(delete(Listing).where(Listing.id == listing_id))
            await session.commit()
