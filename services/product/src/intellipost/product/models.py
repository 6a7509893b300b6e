"""ORM tables of the product service (its own database; no other service reads them)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from intellipost.shared.db import Base, UTCDateTime


class ProductBase(Base):
    __abstract__ = True


class Product(ProductBase):
    """A seller's product and where it is in its life: from photos to a published listing.

    ``content`` is a copy of the AI content service's latest version for this product (its
    id is ``content_id``), so reading a product never depends on that service being up.
    ``attempt_id`` names the background work (generation or publication) that owns the
    product while it is ``processing`` or ``publishing``; ``worker_id`` is the process doing
    it, which renews ``lease_expires_at`` while it lives.
    """

    __tablename__ = "products"
    __table_args__ = (
        Index("ix_products_owner_created", "owner_id", "created_at", "id"),
        Index("ix_products_status_lease", "status", "lease_expires_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    prompt: Mapped[str] = mapped_column(Text)
    site: Mapped[str] = mapped_column(String(3))
    price: Mapped[Decimal | None] = mapped_column(Numeric(14, 2), nullable=True)
    quantity: Mapped[int] = mapped_column(Integer)
    condition: Mapped[str] = mapped_column(String(16))
    content_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    content: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    failed_step: Mapped[str | None] = mapped_column(String(16), nullable=True)
    item_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    permalink: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    attempt_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revision: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    images: Mapped[list[ProductImage]] = relationship(
        back_populates="product",
        order_by="ProductImage.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="selectin",
    )


class ProductImage(ProductBase):
    """One photo: its re-encoded original and thumbnails live in storage under ``variants``."""

    __tablename__ = "product_images"
    __table_args__ = (UniqueConstraint("product_id", "position", name="uq_product_images_pos"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    product_id: Mapped[str] = mapped_column(
        String(36),
        ForeignKey("products.id", ondelete="CASCADE", name="fk_product_images_product_id"),
    )
    position: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(8))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    dominant_colors: Mapped[list[str]] = mapped_column(JSON)
    # size name ("original", "300", ...) -> storage key
    variants: Mapped[dict[str, str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    product: Mapped[Product] = relationship(back_populates="images")


class IdempotencyKey(ProductBase):
    """A client's ``Idempotency-Key``: the request it first came with, and what it made.

    Unique per user and key, so two requests racing with one key cannot both act; the
    fingerprint tells a retry (same request) from a reuse of the key (another request).
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("owner_id", "key", name="uq_idempotency_keys_owner_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[str] = mapped_column(
        String(36),
        ForeignKey("products.id", ondelete="CASCADE", name="fk_idempotency_keys_product_id"),
        index=True,
    )
    # Indexed for the purge of expired keys.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
