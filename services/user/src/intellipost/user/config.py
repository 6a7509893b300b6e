"""Settings of the user service (``INTELLIPOST_USER_*``)."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from intellipost.shared.app import load_config
from intellipost.shared.config import AuthMixin, BaseModuleConfig, DatabaseMixin, module_config


class UserConfig(BaseModuleConfig, DatabaseMixin, AuthMixin):
    model_config = module_config("user")
    module = "user"

    port: int = Field(8001, ge=1, le=65535, description="Port to bind.")
    registration_enabled: bool = Field(True, description="Whether new accounts may register.")
    jwt_expire_minutes: int = Field(30, ge=1, le=1440, description="Access token lifetime.")
    session_expire_hours: int = Field(24, ge=1, description="Refresh token lifetime.")
    remember_me_expire_days: int = Field(
        30, ge=1, description="Refresh token lifetime with remember me."
    )
    password_min_length: int = Field(8, ge=6, le=128, description="Shortest password accepted.")
    password_require_uppercase: bool = Field(True, description="Password needs an A-Z letter.")
    password_require_lowercase: bool = Field(True, description="Password needs an a-z letter.")
    password_require_digit: bool = Field(True, description="Password needs a digit.")
    password_require_special: bool = Field(True, description="Password needs a symbol.")
    max_login_attempts: int = Field(5, ge=1, description="Failures before the account locks.")
    lockout_duration_minutes: int = Field(15, ge=1, description="How long a lock lasts.")


@lru_cache
def get_config() -> UserConfig:
    return load_config(UserConfig)
