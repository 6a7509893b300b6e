"""Authentication at the edge: the gateway in front of the user service, as real processes.

The first part pins down the gateway's pieces in-process (public routes, the cache of
verified tokens); the rest runs the user service and the gateway as real processes and
checks what a client sees and what reaches the service.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.types import Message, Receive, Scope, Send

from intellipost.gateway.auth import (
    CHALLENGE,
    EdgeAuthMiddleware,
    PublicRoutes,
    VerifiedTokens,
)
from intellipost.gateway.config import DEFAULT_PUBLIC_ROUTES
from intellipost.shared.auth import JwksCache, Principal, TokenVerifier
from intellipost.shared.context import user_id_var
from intellipost.user.keys import private_pem, public_jwk, public_pem
from tests.support import Component, TokenIssuer, base_env, free_port

FAST_ARGON2 = {
    "INTELLIPOST_USER_ARGON2_TIME_COST": "1",
    "INTELLIPOST_USER_ARGON2_MEMORY_COST_KIB": "1024",
    "INTELLIPOST_USER_ARGON2_PARALLELISM": "1",
}
PASSWORD = "Corr3ct-Horse!"

# --- the gateway's pieces, in-process ------------------------------------------------------


def test_public_routes_match_method_and_whole_path_segments() -> None:
    routes = PublicRoutes(DEFAULT_PUBLIC_ROUTES, open_prefixes=("/health", "/api/v1/info"))
    assert routes.is_public("POST", "/api/v1/auth/login")
    assert routes.is_public("GET", "/.well-known/jwks.json")
    assert routes.is_public("HEAD", "/.well-known/jwks.json")
    assert routes.is_public("GET", "/api/v1/mercadolibre/callback")
    assert routes.is_public("GET", "/health/ready")
    assert routes.is_public("GET", "/api/v1/info")
    assert not routes.is_public("GET", "/api/v1/auth/login")  # method matters
    assert not routes.is_public("POST", "/api/v1/auth/logout")
    assert not routes.is_public("POST", "/api/v1/auth/login-as-admin")  # whole segments
    assert not routes.is_public("GET", "/api/v1/users/me")
    # A dot segment could be resolved downstream into a protected path.
    assert not routes.is_public("POST", "/api/v1/auth/register/../../users/me/password")


def test_verified_tokens_last_until_exp_and_no_longer() -> None:
    now = [1000.0]
    cache = VerifiedTokens(10, clock=lambda: now[0])
    cache.put(b"t1", "user-1", expires=1060.0, generation=1)
    assert cache.get(b"t1", 1) == "user-1"
    now[0] = 1059.9
    assert cache.get(b"t1", 1) == "user-1"
    now[0] = 1060.0
    assert cache.get(b"t1", 1) is None
    cache.put(b"t2", "user-2", expires=1000.0, generation=1)  # already expired: not kept
    assert len(cache) == 0


def test_verified_tokens_are_dropped_when_the_key_set_changes() -> None:
    cache = VerifiedTokens(10, clock=lambda: 0.0)
    cache.put(b"t1", "user-1", expires=60.0, generation=1)
    assert cache.get(b"t1", 2) is None
    assert cache.get(b"t1", 1) is None  # gone, not just hidden


def test_verified_tokens_stay_within_their_bound_dropping_expired_then_oldest() -> None:
    now = [0.0]
    cache = VerifiedTokens(3, clock=lambda: now[0])
    cache.put(b"old", "u", expires=10.0, generation=1)
    cache.put(b"short", "u", expires=5.0, generation=1)
    cache.put(b"mid", "u", expires=10.0, generation=1)
    now[0] = 6.0
    cache.put(b"new1", "u", expires=10.0, generation=1)  # evicts the expired one
    assert (cache.get(b"old", 1), cache.get(b"short", 1)) == ("u", None)
    cache.put(b"new2", "u", expires=10.0, generation=1)  # none expired: evicts the oldest
    assert len(cache) == 3
    assert cache.get(b"old", 1) is None
    assert cache.get(b"new2", 1) == "u"


class SpyVerifier(TokenVerifier):
    """The real verifier, counting the signature checks it does."""

    def __init__(self, issuer: TokenIssuer) -> None:
        cache = JwksCache("http://127.0.0.1:9/unused", max_age_seconds=300, min_refresh_seconds=0)
        cache.set_keys(issuer.jwks())
        super().__init__(cache, issuer="intellipost-user", audience="intellipost")
        self.calls = 0

    async def verify(self, token: str) -> Principal:
        self.calls += 1
        return await super().verify(token)


async def call(
    app: Any, method: str, path: str, headers: dict[str, str] | list[tuple[str, str]]
) -> tuple[int, dict[str, str]]:
    """One request through a raw ASGI app; returns the status and the response headers."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    pairs = list(headers.items()) if isinstance(headers, dict) else headers
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in pairs],
        "client": ("127.0.0.1", 5000),
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}


def upstream() -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"x-user", (user_id_var.get() or "").encode())]
        for name, value in scope["headers"]:
            if name == b"authorization":
                headers.append((b"x-saw-authorization", value))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    return app


async def test_a_repeated_token_is_verified_once_and_forwarded_unchanged() -> None:
    issuer = TokenIssuer()
    verifier = SpyVerifier(issuer)
    app = EdgeAuthMiddleware(
        upstream(),
        verifier=verifier,
        public_routes=PublicRoutes(DEFAULT_PUBLIC_ROUTES),
        cache_size=100,
    )
    token = issuer.token("user-5")
    for _ in range(3):
        status, seen = await call(app, "GET", "/api/v1/products", bearer(token))
        assert status == 200
        assert seen["x-user"] == "user-5"
        assert seen["x-saw-authorization"] == f"Bearer {token}"
    assert verifier.calls == 1
    # A change of the key set makes every remembered token be checked again.
    verifier.jwks.set_keys({"keys": issuer.jwks()["keys"] + TokenIssuer().jwks()["keys"]})
    assert (await call(app, "GET", "/api/v1/products", bearer(token)))[0] == 200
    assert verifier.calls == 2


async def test_a_token_whose_key_was_rotated_out_stops_even_if_remembered() -> None:
    issuer = TokenIssuer()
    verifier = SpyVerifier(issuer)
    app = EdgeAuthMiddleware(
        upstream(), verifier=verifier, public_routes=PublicRoutes([]), cache_size=100
    )
    token = issuer.token("user-5")
    assert (await call(app, "GET", "/api/v1/products", bearer(token)))[0] == 200
    verifier.jwks.set_keys(TokenIssuer().jwks())
    status, headers = await call(app, "GET", "/api/v1/products", bearer(token))
    assert status == 401
    assert headers["www-authenticate"] == CHALLENGE


async def test_two_authorization_headers_are_refused() -> None:
    issuer = TokenIssuer()
    app = EdgeAuthMiddleware(
        upstream(), verifier=SpyVerifier(issuer), public_routes=PublicRoutes([]), cache_size=10
    )
    headers = [("Authorization", f"Bearer {issuer.token()}"), ("Authorization", "Bearer x")]
    assert (await call(app, "GET", "/api/v1/products", headers))[0] == 401


# --- real processes ------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Edge:
    """The user service behind the gateway; it signs with a key the test also holds."""

    def __init__(self, tmp: Path, key: Ed25519PrivateKey) -> None:
        self.tmp = tmp
        self.key = key
        self.database_url = f"sqlite+aiosqlite:///{tmp / 'user.db'}"
        self.user = self.user_service(key)
        self.gateway = Component(
            "gateway",
            free_port(),
            base_env(
                tmp,
                INTELLIPOST_GATEWAY_USER_URL=self.user.url,
                INTELLIPOST_JWKS_URL=f"{self.user.url}/.well-known/jwks.json",
                INTELLIPOST_GATEWAY_JWKS_CACHE_SECONDS="1",
                INTELLIPOST_GATEWAY_JWKS_MIN_REFRESH_SECONDS="0",
            ),
            tmp / "gateway.log",
        )
        self.client = httpx.Client(base_url=self.gateway.url, timeout=20)

    def user_service(
        self, key: Ed25519PrivateKey, previous: Ed25519PrivateKey | None = None
    ) -> Component:
        env = base_env(
            self.tmp,
            INTELLIPOST_USER_DATABASE_URL=self.database_url,
            INTELLIPOST_USER_JWT_PRIVATE_KEY=private_pem(key).decode(),
            INTELLIPOST_USER_JWT_PREVIOUS_PUBLIC_KEY=public_pem(previous) if previous else "",
            **FAST_ARGON2,
        )
        port = getattr(self, "user", None)
        return Component(
            "user",
            port.port if port is not None else free_port(),
            env,
            self.tmp / "user.log",
        )

    def start(self) -> Edge:
        self.user.start(wait="/health/startup")
        self.gateway.start()
        return self

    def stop(self) -> None:
        self.client.close()
        self.gateway.stop()
        self.user.stop()

    def restart_user(self, key: Ed25519PrivateKey, previous: Ed25519PrivateKey) -> None:
        """A key rotation: the same service, a new signing key, the old one as previous."""
        self.user.stop()
        self.key = key
        self.user = self.user_service(key, previous)
        self.user.start(wait="/health/startup")

    def sign_up(self) -> tuple[str, dict[str, Any]]:
        address = f"ana.{uuid.uuid4().hex[:8]}@example.com"
        body = {"email": address, "password": PASSWORD, "first_name": "Ana", "last_name": "Díaz"}
        assert self.client.post("/api/v1/auth/register", json=body).status_code == 201
        return address, self.sign_in(address)

    def sign_in(self, address: str) -> dict[str, Any]:
        response = self.client.post(
            "/api/v1/auth/login", json={"email": address, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        tokens: dict[str, Any] = response.json()
        return tokens

    def get_me(self, token: str | None, **headers: str) -> httpx.Response:
        all_headers = {**(bearer(token) if token else {}), **headers}
        return self.client.get("/api/v1/users/me", headers=all_headers)

    def forge(self, key: Ed25519PrivateKey | None = None, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": "intellipost-user",
            "aud": "intellipost",
            "sub": str(uuid.uuid4()),
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            **overrides,
        }
        key = key or self.key
        kid = public_jwk(key.public_key())["kid"]
        return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})

    def user_saw(self, correlation_id: str) -> bool:
        """Whether the request reached the service (the gateway's own JWKS fetch, made on
        behalf of the same request, carries the same correlation id and does not count)."""
        return any(
            r.get("correlation_id") == correlation_id and r.get("path") == "/api/v1/users/me"
            for r in self.user.log_records()
        )


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    running = Edge(tmp_path_factory.mktemp("edge"), Ed25519PrivateKey.generate()).start()
    try:
        yield running
    finally:
        running.stop()


def assert_invalid_token(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == 401
    assert body["type"].endswith("/invalid-token")
    assert body["correlation_id"] == response.headers["x-correlation-id"]
    return body


def test_register_login_call_refresh_logout_through_the_gateway(edge: Edge) -> None:
    address, tokens = edge.sign_up()
    user_id = jwt.decode(tokens["access_token"], options={"verify_signature": False})["sub"]
    correlation = f"walk-{uuid.uuid4().hex}"
    me = edge.get_me(tokens["access_token"], **{"X-Correlation-ID": correlation})
    assert me.status_code == 200
    assert me.json()["id"] == user_id
    assert me.json()["email"] == address
    # The service verified the token itself and knows who is calling, as does the gateway.
    [seen] = edge.user.wait_for_log(
        lambda r: r.get("correlation_id") == correlation and r.get("path") == "/api/v1/users/me"
    )
    assert seen["user_id"] == user_id
    [passed] = edge.gateway.wait_for_log(
        lambda r: r.get("correlation_id") == correlation and r.get("event_type") == "access"
    )
    assert passed["user_id"] == user_id

    refreshed = edge.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200
    pair = refreshed.json()
    assert edge.get_me(pair["access_token"]).status_code == 200
    assert (
        edge.client.post("/api/v1/auth/logout", headers=bearer(pair["access_token"])).status_code
        == 204
    )
    ended = edge.client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert ended.status_code == 401
    secrets = {PASSWORD, tokens["access_token"], tokens["refresh_token"], pair["refresh_token"]}
    for component in (edge.gateway, edge.user):
        assert not [s for s in secrets if s in component.output()], component.module


def alg_none(edge: Edge) -> str:
    header = {"alg": "none", "kid": public_jwk(edge.key.public_key())["kid"], "typ": "JWT"}
    payload = jwt.decode(edge.forge(), options={"verify_signature": False})
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}."


def hs256_with_public_key(edge: Edge) -> str:
    kid = public_jwk(edge.key.public_key())["kid"]
    header = {"alg": "HS256", "kid": kid, "typ": "JWT"}
    payload = jwt.decode(edge.forge(), options={"verify_signature": False})
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    secret = public_pem(edge.key).encode()
    return (
        f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"
    )


def tampered(edge: Edge) -> str:
    header, _, signature = edge.sign_up()[1]["access_token"].split(".")
    payload = jwt.decode(edge.forge(), options={"verify_signature": False})
    return f"{header}.{b64(json.dumps(payload).encode())}.{signature}"


FORGERIES = {
    "missing": lambda e: None,
    "expired": lambda e: e.forge(exp=int(time.time()) - 120),
    "not yet valid": lambda e: e.forge(nbf=int(time.time()) + 600),
    "wrong audience": lambda e: e.forge(aud="another-app"),
    "wrong issuer": lambda e: e.forge(iss="https://attacker.example"),
    "tampered": tampered,
    "alg none": alg_none,
    "HS256 with the public key": hs256_with_public_key,
    "unknown key": lambda e: e.forge(key=Ed25519PrivateKey.generate()),
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_a_bad_token_is_refused_at_the_gateway_and_never_reaches_the_service(
    edge: Edge, forgery: str
) -> None:
    token = FORGERIES[forgery](edge)
    correlation = f"forged-{uuid.uuid4().hex}"
    response = edge.get_me(token, **{"X-Correlation-ID": correlation})
    assert_invalid_token(response)
    assert response.headers["x-correlation-id"] == correlation
    [line] = edge.gateway.wait_for_log(
        lambda r: r.get("correlation_id") == correlation and r.get("event_type") == "access"
    )
    assert line["status"] == 401
    [event] = [
        r
        for r in edge.gateway.log_records()
        if r.get("correlation_id") == correlation and r.get("event_type") == "security"
    ]
    assert event["security_event"] in {"invalid_token", "missing_token"}
    assert not edge.user_saw(correlation)


def test_public_routes_need_no_token_and_others_do(edge: Edge) -> None:
    # Reaches the user service: its own answer to bad credentials, not the gateway's 401.
    login = edge.client.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "x"}
    )
    assert login.status_code == 401
    assert login.json()["type"].endswith("/invalid-credentials")
    jwks = edge.client.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    assert jwks.json()["keys"][0]["kid"] == public_jwk(edge.key.public_key())["kid"]
    for own in ("/health/live", "/api/v1/info"):
        assert edge.client.get(own).status_code == 200, own
    # Not ready (the other services are not running here), but answered without a token.
    assert edge.client.get("/health/ready").status_code == 503
    assert_invalid_token(edge.client.post("/api/v1/auth/logout"))
    assert_invalid_token(edge.client.get("/api/v1/auth/login"))
    assert_invalid_token(edge.client.post("/api/v1/auth/register/../../users/me/password"))


def test_key_rotation_keeps_sessions_and_a_rotated_out_key_stops_at_the_gateway(
    tmp_path: Path,
) -> None:
    a, b, c = (Ed25519PrivateKey.generate() for _ in range(3))
    edge = Edge(tmp_path, a).start()
    try:
        address, tokens = edge.sign_up()
        token_a = tokens["access_token"]
        assert edge.get_me(token_a).status_code == 200

        edge.restart_user(b, previous=a)
        time.sleep(1.2)  # the gateway's JWKS cache time in this test
        assert edge.get_me(token_a).status_code == 200  # rotation logs nobody out
        token_b = edge.sign_in(address)["access_token"]
        assert jwt.get_unverified_header(token_b)["kid"] == public_jwk(b.public_key())["kid"]
        assert edge.get_me(token_b).status_code == 200

        edge.restart_user(c, previous=b)
        time.sleep(1.2)
        correlation = f"rotated-out-{uuid.uuid4().hex}"
        assert_invalid_token(edge.get_me(token_a, **{"X-Correlation-ID": correlation}))
        assert not edge.user_saw(correlation)
        assert edge.get_me(token_b).status_code == 200
    finally:
        edge.stop()
