"""Connections (sealed tokens) and listings (idempotent publications).

Revision ID: mercadolibre_0002
Revises: mercadolibre_0001
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "mercadolibre_0002"
down_revision: str | None = "mercadolibre_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("ml_user_id", sa.BigInteger(), nullable=False),
        sa.Column("site_id", sa.String(3), nullable=False),
        sa.Column("nickname", sa.String(255), nullable=False),
        sa.Column("scopes", sa.String(255), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=False),
        sa.Column("refresh_token", sa.Text(), nullable=False),
        sa.Column("access_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("connected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "listings",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("product_id", sa.String(64), nullable=False),
        sa.Column("site_id", sa.String(3), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("picture_ids", sa.JSON(), nullable=True),
        sa.Column("item_id", sa.String(32), nullable=True),
        sa.Column("permalink", sa.Text(), nullable=True),
        sa.Column("item_status", sa.String(32), nullable=True),
        sa.Column("description_posted", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("user_id", "idempotency_key", name="uq_listings_user_key"),
    )
    op.create_index("ix_listings_user_id", "listings", ["user_id"])
    op.create_index("ix_listings_product_id", "listings", ["product_id"])
    op.create_index("ix_listings_item_id", "listings", ["item_id"])


def downgrade() -> None:
    op.drop_table("listings")
    op.drop_table("connections")
