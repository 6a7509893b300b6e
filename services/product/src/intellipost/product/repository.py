"""All SQL of the product service: products, images, idempotency keys, work claims."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, and_, case, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from intellipost.product.models import IdempotencyKey, Product, ProductImage

# A product in one of these is being worked on by a background task that holds a claim.
WORKING = ("processing", "publishing")


class KeyTakenError(Exception):
    """Another request stored this Idempotency-Key first."""


def _rowcount(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


class ProductRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- products ------------------------------------------------------------------------

    async def get(self, product_id: str) -> Product | None:
        result = await self.session.execute(select(Product).where(Product.id == product_id))
        return result.scalar_one_or_none()

    async def page(
        self,
        owner_id: str,
        *,
        limit: int,
        status: str | None = None,
        after: tuple[datetime, str] | None = None,
    ) -> list[Product]:
        """Newest first; ``after`` is the (created_at, id) of the last product already seen."""
        query = select(Product).where(Product.owner_id == owner_id)
        if status is not None:
            query = query.where(Product.status == status)
        if after is not None:
            created, product_id = after
            query = query.where(
                or_(
                    Product.created_at < created,
                    and_(Product.created_at == created, Product.id < product_id),
                )
            )
        query = query.order_by(Product.created_at.desc(), Product.id.desc()).limit(limit)
        return list((await self.session.execute(query)).scalars())

    async def add(self, product: Product, key: IdempotencyKey | None = None) -> None:
        self.session.add(product)
        await self.session.flush()
        if key is not None:
            await self.add_key(key)

    async def change(
        self,
        product_id: str,
        values: dict[str, Any],
        *,
        statuses: Collection[str],
        revision: int | None = None,
        attempt_id: str | None = None,
    ) -> bool:
        """One conditional UPDATE: True when the product was still as the caller saw it.

        The database re-checks the condition under the row's write lock (PostgreSQL) or the
        database write lock (SQLite), so of two requests racing, exactly one changes it.
        """
        query = update(Product).where(Product.id == product_id, Product.status.in_(statuses))
        if revision is not None:
            query = query.where(Product.revision == revision)
        if attempt_id is not None:
            query = query.where(Product.attempt_id == attempt_id)
        result = await self.session.execute(
            query.values(**values, revision=Product.revision + 1).execution_options(
                synchronize_session=False
            )
        )
        return _rowcount(result) == 1

    async def delete(self, product_id: str, *, revision: int, statuses: Collection[str]) -> bool:
        result = await self.session.execute(
            delete(Product)
            .where(
                Product.id == product_id,
                Product.revision == revision,
                Product.status.in_(statuses),
            )
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1

    async def existing_images(self, image_ids: Collection[str]) -> set[str]:
        """Which of these image ids have a row."""
        result = await self.session.execute(
            select(ProductImage.id).where(ProductImage.id.in_(list(image_ids)))
        )
        return set(result.scalars())

    # --- idempotency keys ----------------------------------------------------------------

    async def key(self, owner_id: str, key: str) -> IdempotencyKey | None:
        result = await self.session.execute(
            select(IdempotencyKey).where(
                IdempotencyKey.owner_id == owner_id, IdempotencyKey.key == key
            )
        )
        return result.scalar_one_or_none()

    async def drop_key(self, key_id: str) -> None:
        await self.session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == key_id))

    async def purge_keys(self, created_before: datetime) -> int:
        result = await self.session.execute(
            delete(IdempotencyKey).where(IdempotencyKey.created_at < created_before)
        )
        return _rowcount(result)

    async def add_key(self, key: IdempotencyKey) -> None:
        self.session.add(key)
        try:
            await self.session.flush()
        except IntegrityError as exc:
            # The unique index decides between two requests racing with one key.
            await self.session.rollback()
            raise KeyTakenError from exc

    # --- background work claims ----------------------------------------------------------

    async def renew_claims(self, worker_id: str, until: datetime) -> int:
        result = await self.session.execute(
            update(Product)
            .where(Product.worker_id == worker_id, Product.status.in_(WORKING))
            .values(lease_expires_at=until)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result)

    async def fail_abandoned(
        self, now: datetime, reason: str, *, worker_id: str | None = None
    ) -> list[tuple[str, str]]:
        """Moves to failed the products whose claim ran out (or that ``worker_id`` held).

        Returns their (id, owner id). Generation failed in ``processing``, publication in
        ``publishing``; either can be retried.
        """
        claim = (
            Product.worker_id == worker_id
            if worker_id is not None
            else Product.lease_expires_at < now
        )
        result = await self.session.execute(
            update(Product)
            .where(Product.status.in_(WORKING), claim)
            .values(
                failed_step=case(
                    (Product.status == "processing", "generation"), else_="publishing"
                ),
                status="failed",
                failure_reason=reason,
                attempt_id=None,
                worker_id=None,
                lease_expires_at=None,
                updated_at=now,
                revision=Product.revision + 1,
            )
            .returning(Product.id, Product.owner_id)
            .execution_options(synchronize_session=False)
        )
        return [(row[0], row[1]) for row in result.all()]
