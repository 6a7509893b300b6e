"""ORM tables of the user service (its own database; no other service reads them)."""

from __future__ import annotations

from intellipost.shared.db import Base


class UserBase(Base):
    __abstract__ = True
