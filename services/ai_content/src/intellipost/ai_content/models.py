"""ORM tables of the ai content service (its own database; no other service reads them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from intellipost.shared.db import Base


class AiContentBase(Base):
    __abstract__ = True


class ContentVersion(AiContentBase):
    """One version of a product's listing content, generated or edited; never updated."""

    __tablename__ = "content_versions"
    # The unique index also serves every lookup by owner and product.
    __table_args__ = (
        UniqueConstraint("owner_id", "product_id", "version", name="uq_content_versions_number"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    site: Mapped[str] = mapped_column(String(3))
    language: Mapped[str] = mapped_column(String(2))
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text)
    # {id, name, confidence, max_title_length, required_attributes, source}: what the
    # quality checks need to run again on an edit.
    category: Mapped[dict[str, Any]] = mapped_column(JSON)
    attributes: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    quality: Mapped[dict[str, Any]] = mapped_column(JSON)
    needs_review: Mapped[bool] = mapped_column(Boolean)
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    # sha256 of the generation input; an identical request returns this version again.
    input_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    parent_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
