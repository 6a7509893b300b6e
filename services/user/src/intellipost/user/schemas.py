"""Request and response bodies of the user service."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, StringConstraints

# Long enough for any passphrase, short enough that hashing it is not a denial of service.
MAX_PASSWORD_LENGTH = 1024


def _printable(value: str) -> str:
    if any(unicodedata.category(c) in {"Cc", "Cf"} for c in value):
        raise ValueError("must not contain control characters")
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_printable),
]
EmailInput = Annotated[str, StringConstraints(min_length=1, max_length=320)]
Password = Annotated[SecretStr, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]


class _Strict(BaseModel):
    # Unknown fields are refused: `{"email": ...}` on PATCH /me must not look accepted.
    model_config = ConfigDict(extra="forbid")


class RegisterRequest(_Strict):
    email: EmailInput
    password: Password
    first_name: Name
    last_name: Name


class LoginRequest(_Strict):
    email: EmailInput
    password: Password
    remember_me: bool = False


class RefreshRequest(_Strict):
    refresh_token: Annotated[SecretStr, Field(min_length=1, max_length=512)]


class UpdateProfileRequest(_Strict):
    first_name: Name | None = None
    last_name: Name | None = None


class ChangePasswordRequest(_Strict):
    current_password: Password
    new_password: Password


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    first_name: str
    last_name: str
    created_at: datetime
    updated_at: datetime


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the scheme's name, not a secret
    expires_in: int = Field(description="Seconds the access token is valid for.")
    refresh_token: str
    refresh_expires_in: int = Field(description="Seconds until the session must sign in again.")


class Jwks(BaseModel):
    keys: list[dict[str, str]]
