"""Alembic environment of the mercadolibre service."""

from intellipost.mercadolibre.models import MercadolibreBase
from intellipost.shared.migrations import run_env

run_env(MercadolibreBase.metadata)
