"""Baseline: the user service's database exists and is under Alembic.

Revision ID: user_0001
Revises:
Create Date: 2026-12-04
"""

from collections.abc import Sequence

revision: str = "user_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
