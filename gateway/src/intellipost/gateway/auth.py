"""Authentication at the edge: only requests with a verified access token reach a service."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from intellipost.shared.auth import InvalidTokenError, TokenVerifier, bearer_token
from intellipost.shared.context import user_id_var
from intellipost.shared.errors import problem_response, problem_type
from intellipost.shared.logging import get_structured_logger

log = get_structured_logger("gateway.auth")

CHALLENGE = 'Bearer error="invalid_token"'


def parse_public_route(entry: str) -> tuple[str, str]:
    """``"POST /api/v1/auth/login"`` -> ``("POST", "/api/v1/auth/login")``."""
    method, _, path = entry.strip().partition(" ")
    path = path.strip()
    if not method.isalpha() or not path.startswith("/"):
        raise ValueError(f"{entry!r} is not 'METHOD /path'")
    return method.upper(), path.rstrip("/") or "/"


class PublicRoutes:
    """Which requests need no token: a method plus a path prefix (whole segments only)."""

    def __init__(self, entries: Iterable[str], open_prefixes: Iterable[str] = ()) -> None:
        routes: dict[str, list[str]] = {}
        for entry in entries:
            method, prefix = parse_public_route(entry)
            routes.setdefault(method, []).append(prefix)
            if method == "GET":
                routes.setdefault("HEAD", []).append(prefix)
        self.routes = {m: tuple(p) for m, p in routes.items()}
        # The gateway's own endpoints (health, /api/v1/info), open to every method.
        self.open_prefixes = tuple(open_prefixes)

    def is_public(self, method: str, path: str) -> bool:
        # A dot segment could be resolved by something downstream into a protected path.
        if "/." in path and any(part in {".", ".."} for part in path.split("/")):
            return False
        if path.startswith(self.open_prefixes):
            return True
        for prefix in self.routes.get(method, ()):
            if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
                return True
        return False


class VerifiedTokens:
    """Access tokens already verified, by SHA-256, each until its own ``exp`` (never beyond).

    A repeated token then costs a hash and a dict lookup instead of a signature check. An
    entry made under another JWKS generation is checked again, so a key rotated out of the
    set stops its tokens at the next request. Bounded: expired entries go first, then the
    oldest.
    """

    def __init__(self, max_entries: int, *, clock: Callable[[], float] = time.time) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[bytes, tuple[float, str, int]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: bytes, generation: int) -> str | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        expires, user_id, made_under = entry
        if made_under != generation or expires <= self.clock():
            del self._entries[digest]
            return None
        return user_id

    def put(self, digest: bytes, user_id: str, expires: float, generation: int) -> None:
        now = self.clock()
        if self.max_entries <= 0 or expires <= now:
            return
        if len(self._entries) >= self.max_entries:
            for key in [k for k, (exp, _, _) in self._entries.items() if exp <= now]:
                del self._entries[key]
            while len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]
        self._entries[digest] = (expires, user_id, generation)


class EdgeAuthMiddleware:
    """Pure ASGI: 401 problem+json for a protected route without a valid access token.

    Sits inside the correlation middleware (the 401 carries the ids and gets its access
    line). The ``Authorization`` header goes upstream unchanged: each service verifies the
    token again. The caller's user id is put in the log context for the request's lines.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: TokenVerifier,
        public_routes: PublicRoutes,
        cache_size: int,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.public_routes = public_routes
        self.verified = VerifiedTokens(cache_size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.public_routes.is_public(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        authorization: str | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is not None:
                    await self._reject(scope, receive, send, "more than one Authorization")
                    return
                authorization = value.decode("latin-1")
        token = bearer_token(authorization)
        if token is None:
            await self._reject(scope, receive, send, "missing")
            return
        digest = hashlib.sha256(token.encode("latin-1")).digest()
        jwks = self.verifier.jwks
        # A stale key set skips the cache: verifying refetches it, and a key rotated out
        # since then stops its tokens here within the JWKS cache time.
        user_id = None if jwks.stale else self.verified.get(digest, jwks.generation)
        if user_id is None:
            try:
                principal = await self.verifier.verify(token)
            except InvalidTokenError as exc:
                await self._reject(scope, receive, send, exc.reason)
                return
            user_id = principal.user_id
            self.verified.put(digest, user_id, float(principal.claims["exp"]), jwks.generation)
        user_id_var.set(user_id)
        await self.app(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, reason: str) -> None:
        missing = reason == "missing"
        log.security_event(
            "missing_token" if missing else "invalid_token",
            "low" if missing else "medium",
            reason=reason,
            method=scope["method"],
            path=scope["path"],
            client=scope["client"][0] if scope.get("client") else None,
        )
        detail = (
            "A bearer access token is required."
            if missing
            else f"The access token is not valid ({reason})."
        )
        response = problem_response(
            401,
            title="Unauthorized",
            detail=detail,
            type_=problem_type("invalid-token"),
            instance=scope["path"],
            headers={"WWW-Authenticate": CHALLENGE},
        )
        await response(scope, receive, send)
