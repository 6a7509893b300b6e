"""Alembic environment of the product service."""

from intellipost.product.models import ProductBase
from intellipost.shared.migrations import run_env

run_env(ProductBase.metadata)
