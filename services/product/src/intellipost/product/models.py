"""ORM tables of the product service (its own database; no other service reads them)."""

from __future__ import annotations

from intellipost.shared.db import Base


class ProductBase(Base):
    __abstract__ = True
