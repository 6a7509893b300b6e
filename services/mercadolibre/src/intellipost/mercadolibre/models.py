"""ORM tables of the mercadolibre service (its own database; no other service reads them)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from intellipost.shared.db import Base, UTCDateTime


class MercadolibreBase(Base):
    __abstract__ = True


class Connection(MercadolibreBase):
    """A user's MercadoLibre account link. Tokens are stored sealed (AES-256-GCM), never plain."""

    __tablename__ = "connections"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ml_user_id: Mapped[int] = mapped_column(BigInteger)
    site_id: Mapped[str] = mapped_column(String(3))
    nickname: Mapped[str] = mapped_column(String(255))
    scopes: Mapped[str] = mapped_column(String(255))
    access_token: Mapped[str] = mapped_column(Text)
    refresh_token: Mapped[str] = mapped_column(Text)
    access_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # "active", or "revoked" once MercadoLibre refused the refresh token (reconnect needed).
    status: Mapped[str] = mapped_column(String(16), default="active")
    connected_at: Mapped[datetime] = mapped_column(UTCDateTime)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Listing(MercadolibreBase):
    """One publication, keyed by the caller's Idempotency-Key, with its progress.

    Each step's result is saved as soon as it is known (picture ids, then the item, then the
    description), so a retry with the same key resumes instead of listing the item twice.
    """

    __tablename__ = "listings"
    __table_args__ = (UniqueConstraint("user_id", "idempotency_key", name="uq_listings_user_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[str] = mapped_column(String(64), index=True)
    site_id: Mapped[str] = mapped_column(String(3))
    # "pending" until the description is posted, then "published".
    state: Mapped[str] = mapped_column(String(16), default="pending")
    picture_ids: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    item_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    permalink: Mapped[str | None] = mapped_column(Text, nullable=True)
    item_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    description_posted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
