"""An index on idempotency_keys.created_at for purging expired keys.

Revision ID: product_0003
Revises: product_0002
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "product_0003"
down_revision: str | None = "product_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
