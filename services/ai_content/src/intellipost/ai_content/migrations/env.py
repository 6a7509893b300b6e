"""Alembic environment of the ai content service."""

from intellipost.ai_content.models import AiContentBase
from intellipost.shared.migrations import run_env

run_env(AiContentBase.metadata)
