"""ORM tables of the ai content service (its own database; no other service reads them)."""

from __future__ import annotations

from intellipost.shared.db import Base


class AiContentBase(Base):
    __abstract__ = True
