"""Access tokens (signed JWTs) and refresh tokens (opaque, stored only as a hash)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime

import jwt

from intellipost.user.config import UserConfig
from intellipost.user.keys import KeyRing

# 32 random bytes: 256 bits, the floor the design sets for a refresh token.
REFRESH_TOKEN_BYTES = 32


def issue_access_token(
    keyring: KeyRing,
    config: UserConfig,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    now: datetime,
) -> str:
    issued = int(now.timestamp())
    claims = {
        "iss": config.jwt_issuer,
        "aud": config.jwt_audience,
        "sub": str(user_id),
        "iat": issued,
        "nbf": issued,
        "exp": issued + config.jwt_expire_minutes * 60,
        "jti": uuid.uuid4().hex,
        # The session (refresh-token family), so logout knows which one to end.
        "sid": str(session_id),
    }
    return jwt.encode(
        claims,
        keyring.signing_key,
        algorithm=keyring.alg,
        headers={"kid": keyring.kid, "typ": "JWT"},
    )


def new_refresh_token() -> str:
    return secrets.token_urlsafe(REFRESH_TOKEN_BYTES)


def hash_refresh_token(token: str) -> str:
    # A plain digest suffices: the token is 256 random bits, so there is nothing to guess.
    return hashlib.sha256(token.encode()).hexdigest()
