"""Products, their images and the clients' idempotency keys.

Revision ID: product_0002
Revises: product_0001
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "product_0002"
down_revision: str | None = "product_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("site", sa.String(3), nullable=False),
        sa.Column("price", sa.Numeric(14, 2), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("condition", sa.String(16), nullable=False),
        sa.Column("content_id", sa.String(64), nullable=True),
        sa.Column("content", sa.JSON(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("failed_step", sa.String(16), nullable=True),
        sa.Column("item_id", sa.String(32), nullable=True),
        sa.Column("permalink", sa.String(2048), nullable=True),
        sa.Column("attempt_id", sa.String(36), nullable=True),
        sa.Column("worker_id", sa.String(36), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_products_owner_created", "products", ["owner_id", "created_at", "id"])
    op.create_index("ix_products_status_lease", "products", ["status", "lease_expires_at"])
    op.create_table(
        "product_images",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "product_id",
            sa.String(36),
            sa.ForeignKey("products.id", ondelete="CASCADE", name="fk_product_images_product_id"),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("dominant_colors", sa.JSON(), nullable=False),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("product_id", "position", name="uq_product_images_pos"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column(
            "product_id",
            sa.String(36),
            sa.ForeignKey("products.id", ondelete="CASCADE", name="fk_idempotency_keys_product_id"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("owner_id", "key", name="uq_idempotency_keys_owner_key"),
    )
    op.create_index("ix_idempotency_keys_product_id", "idempotency_keys", ["product_id"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_product_id", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_table("product_images")
    op.drop_index("ix_products_status_lease", table_name="products")
    op.drop_index("ix_products_owner_created", table_name="products")
    op.drop_table("products")
