"""Alembic environment of the user service."""

from intellipost.shared.migrations import run_env
from intellipost.user.models import UserBase

run_env(UserBase.metadata)
