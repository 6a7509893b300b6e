"""Verification of the user service's access tokens (JWKS), for the gateway and every service."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from jwt import PyJWK

from intellipost.shared.config import AuthMixin
from intellipost.shared.context import user_id_var
from intellipost.shared.errors import ProblemError
from intellipost.shared.http import get_service_client
from intellipost.shared.logging import get_structured_logger

# Asymmetric only: a token naming HS256 (signed with the public key as an HMAC secret) or
# `none` is refused before any key is looked at.
ALLOWED_ALGORITHMS = ("EdDSA", "ES256")
REQUIRED_CLAIMS = ["iss", "aud", "sub", "exp", "iat", "jti"]
CLOCK_SKEW_SECONDS = 5
# Far above any token we issue; a larger header is refused before anything parses it.
MAX_TOKEN_LENGTH = 8192

log = get_structured_logger("shared.auth")


class InvalidTokenError(Exception):
    """The token is not acceptable; ``reason`` is safe to log (never the token)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Principal:
    """Who the caller is, as the user service vouched in a verified token."""

    user_id: str
    claims: dict[str, Any]
    token: str = field(repr=False)


class JwksCache:
    """Public keys by ``kid``, fetched from the user service and refreshed at a bounded rate.

    An unknown ``kid`` triggers a refetch (a key was just rotated in), but no more often than
    every ``min_refresh_seconds``, so a flood of forged kids cannot turn into a flood of
    fetches. ``generation`` changes whenever the set of keys does, so a cache of verified
    tokens can tell that a key it relied on may have been rotated out.
    """

    def __init__(self, url: str, *, max_age_seconds: float, min_refresh_seconds: float) -> None:
        self.url = url
        self.max_age_seconds = max_age_seconds
        self.min_refresh_seconds = min_refresh_seconds
        self.generation = 0
        self._keys: dict[str, PyJWK] = {}
        self._raw: dict[str, dict[str, Any]] = {}
        self._fetched_at = 0.0
        self._attempted_at = -1e9
        self._pinned = False
        self._lock = asyncio.Lock()

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    @property
    def stale(self) -> bool:
        """Whether the next verification will refetch the keys (never, when pinned)."""
        return not self._pinned and time.monotonic() - self._fetched_at > self.max_age_seconds

    async def get(self, kid: str) -> PyJWK | None:
        if self._pinned:
            return self._keys.get(kid)
        stale = self.stale
        if kid not in self._keys or stale:
            await self._refresh(force=kid not in self._keys)
        return self._keys.get(kid)

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            now = time.monotonic()
            # With no keys at all (the user service was still starting), waiting the full
            # interval would refuse every token meanwhile; retry after a second instead.
            interval = (
                self.min_refresh_seconds if self._keys else min(1.0, self.min_refresh_seconds)
            )
            if now - self._attempted_at < interval:
                return
            if not force and now - self._fetched_at <= self.max_age_seconds:
                return
            self._attempted_at = now
            try:
                response = await get_service_client().get(self.url, forward_auth=False)
                response.raise_for_status()
                document = response.json()
                if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
                    raise ValueError("not a JWK set")
            except Exception as exc:
                # Keep serving with the keys we have; the next unknown kid retries later.
                log.warning("could not refresh JWKS", url=self.url, error=type(exc).__name__)
                return
            changed = self._load(document["keys"])
            self._fetched_at = now
            if changed:
                log.info("JWKS refreshed", url=self.url, kids=sorted(self._keys))

    def _load(self, jwks: list[Any]) -> bool:
        """Replace the keys with the usable ones in ``jwks``; True when the set changed."""
        keys: dict[str, PyJWK] = {}
        raw: dict[str, dict[str, Any]] = {}
        for jwk in jwks:
            if not isinstance(jwk, dict) or jwk.get("alg") not in ALLOWED_ALGORITHMS:
                continue
            kid = jwk.get("kid")
            if not isinstance(kid, str) or not kid or jwk.get("use", "sig") != "sig":
                continue
            try:
                keys[kid] = PyJWK(jwk, jwk["alg"])
            except (jwt.PyJWTError, ValueError, TypeError, KeyError):
                # One malformed entry must not cost us the good keys next to it.
                log.warning("ignoring unusable JWK", url=self.url, kid=kid)
                continue
            raw[kid] = jwk
        changed = raw != self._raw
        self._keys, self._raw = keys, raw
        if changed:
            self.generation += 1
        return changed

    def set_keys(self, jwks: dict[str, Any]) -> None:
        """Pin a key set (the user service verifies with its own keys, never over HTTP)."""
        self._load(list(jwks.get("keys", [])))
        self._fetched_at = time.monotonic()
        self._pinned = True


class TokenVerifier:
    def __init__(
        self,
        jwks: JwksCache,
        *,
        issuer: str,
        audience: str,
    ) -> None:
        self.jwks = jwks
        self.issuer = issuer
        self.audience = audience

    @classmethod
    def from_config(cls, config: AuthMixin) -> TokenVerifier:
        return cls(
            JwksCache(
                config.jwks_url,
                max_age_seconds=config.jwks_cache_seconds,
                min_refresh_seconds=config.jwks_min_refresh_seconds,
            ),
            issuer=config.jwt_issuer,
            audience=config.jwt_audience,
        )

    async def verify(self, token: str) -> Principal:
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidTokenError("too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidTokenError("malformed") from exc
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise InvalidTokenError(f"algorithm {alg!r} not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidTokenError("no key id")
        key = await self.jwks.get(kid)
        if key is None:
            raise InvalidTokenError("unknown key id")
        if key.algorithm_name != alg:
            raise InvalidTokenError("algorithm does not match the key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidTokenError("expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise InvalidTokenError("not yet valid") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidTokenError("wrong audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidTokenError("wrong issuer") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidTokenError(f"missing claim {exc.claim}") from exc
        except jwt.PyJWTError as exc:
            raise InvalidTokenError("bad signature or claims") from exc
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise InvalidTokenError("no subject")
        return Principal(user_id=sub, claims=claims, token=token)


def verifier_for(config: object) -> TokenVerifier | None:
    """A verifier when the component's settings say where the keys are."""
    return TokenVerifier.from_config(config) if isinstance(config, AuthMixin) else None


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def unauthorized(detail: str, *, error: str = "invalid_token") -> ProblemError:
    challenge = f'Bearer error="{error}"' if error else "Bearer"
    return ProblemError(
        401,
        detail,
        title="Unauthorized",
        slug="invalid-token" if error else "authentication-required",
        headers={"WWW-Authenticate": challenge},
    )


async def authenticate(request: Request) -> Principal:
    """Dependency: the verified caller, also set as ``user_id`` on every log line after."""
    verifier: TokenVerifier | None = request.app.state.verifier
    if verifier is None:
        raise RuntimeError("this component has no token verifier (its config lacks AuthMixin)")
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise unauthorized("A bearer access token is required.", error="invalid_token")
    try:
        principal = await verifier.verify(token)
    except InvalidTokenError as exc:
        log.security_event("invalid_token", "medium", reason=exc.reason, path=request.url.path)
        raise unauthorized(f"The access token is not valid ({exc.reason}).") from exc
    user_id_var.set(principal.user_id)
    return principal


CurrentUser = Annotated[Principal, Depends(authenticate)]
