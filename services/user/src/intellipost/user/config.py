"""Settings of the user service (``INTELLIPOST_USER_*``)."""

from __future__ import annotations

from functools import lru_cache
from typing import Self

from pydantic import Field, SecretStr, model_validator

from intellipost.shared.app import load_config
from intellipost.shared.config import (
    AuthMixin,
    BaseModuleConfig,
    ConfigError,
    DatabaseMixin,
    module_config,
)
from intellipost.user.keys import UnusableKeyError, load_private_pem, load_public_pem


class UserConfig(BaseModuleConfig, DatabaseMixin, AuthMixin):
    model_config = module_config("user")
    module = "user"

    port: int = Field(8001, ge=1, le=65535, description="Port to bind.")
    registration_enabled: bool | None = Field(
        None,
        description="Whether new accounts may register; unset means yes except in production.",
    )
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
    argon2_time_cost: int = Field(3, ge=1, le=20, description="Argon2id passes over memory.")
    argon2_memory_cost_kib: int = Field(
        65536, ge=1024, le=4_194_304, description="Argon2id memory per hash, in KiB."
    )
    argon2_parallelism: int = Field(4, ge=1, le=64, description="Argon2id lanes.")
    jwt_private_key: SecretStr = Field(
        SecretStr(""),
        description="PEM of the signing key (Ed25519 or EC P-256); empty outside production "
        "means one generated once under var/.",
    )
    jwt_previous_public_key: str = Field(
        "",
        description="PEM public key of the key used before the last rotation, still served "
        "in the JWKS so its tokens stay valid until they expire.",
    )

    @model_validator(mode="after")
    def _keys_are_usable(self) -> Self:
        # Checked here so a bad PEM stops the process with one line naming the variable.
        private = self.jwt_private_key.get_secret_value()
        try:
            if private.strip():
                load_private_pem(private)
        except UnusableKeyError as exc:
            raise ConfigError(f"{self.env_name('jwt_private_key')} {exc}") from None
        try:
            if self.jwt_previous_public_key.strip():
                load_public_pem(self.jwt_previous_public_key)
        except UnusableKeyError as exc:
            raise ConfigError(f"{self.env_name('jwt_previous_public_key')} {exc}") from None
        return self

    @property
    def registration_open(self) -> bool:
        if self.registration_enabled is None:
            return not self.is_production
        return self.registration_enabled


@lru_cache
def get_config() -> UserConfig:
    return load_config(UserConfig)
