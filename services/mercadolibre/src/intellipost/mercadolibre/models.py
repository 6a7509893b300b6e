"""ORM tables of the mercadolibre service (its own database; no other service reads them)."""

from __future__ import annotations

from intellipost.shared.db import Base


class MercadolibreBase(Base):
    __abstract__ = True
