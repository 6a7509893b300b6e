"""The shared access-token verifier: what it accepts, what it refuses, how it fetches keys."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI

from intellipost.shared.auth import (
    CurrentUser,
    InvalidTokenError,
    JwksCache,
    TokenVerifier,
)
from intellipost.shared.context import user_id_var
from intellipost.shared.errors import install_error_handlers
from tests.support import LocalHTTPServer, QuietHandler, TokenIssuer


class JwksServer:
    """Serves a JWK set that a test can change, and counts how often it is fetched."""

    def __init__(self, *issuers: TokenIssuer) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.publish(*issuers)
        self.hits = 0
        self._server: Any = None

    def publish(self, *issuers: TokenIssuer) -> None:
        self.document = {"keys": [k for i in issuers for k in i.jwks()["keys"]]}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}/.well-known/jwks.json"

    def serve(self) -> JwksServer:
        owner = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                owner.hits += 1
                body = json.dumps(owner.document).encode()
                self.answer(200, body)

        self._server = LocalHTTPServer(Handler)
        return self

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer()


@pytest.fixture
def jwks_server(issuer: TokenIssuer) -> Iterator[JwksServer]:
    server = JwksServer(issuer).serve()
    yield server
    server.close()


def make_verifier(url: str, *, min_refresh_seconds: float = 0.0) -> TokenVerifier:
    cache = JwksCache(url, max_age_seconds=300, min_refresh_seconds=min_refresh_seconds)
    return TokenVerifier(cache, issuer="intellipost-user", audience="intellipost")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": "intellipost-user",
        "aud": "intellipost",
        "sub": "user-7",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def alg_none_token(issuer: TokenIssuer) -> str:
    header = {"alg": "none", "kid": issuer.kid, "typ": "JWT"}
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}."


def hs256_with_public_key(issuer: TokenIssuer) -> str:
    """The classic confusion attack: HMAC-sign with the published public key as the secret."""
    public_pem = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "kid": issuer.kid, "typ": "JWT"}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def tampered(issuer: TokenIssuer) -> str:
    header, _, signature = issuer.token("user-7").split(".")
    forged = b64(json.dumps(claims(sub="admin")).encode())
    return f"{header}.{forged}.{signature}"


def signed(issuer: TokenIssuer, payload: dict[str, Any], **header: Any) -> str:
    return jwt.encode(payload, issuer.key, algorithm="EdDSA", headers={"kid": issuer.kid, **header})


async def test_a_valid_token_gives_its_subject_and_claims(
    issuer: TokenIssuer, jwks_server: JwksServer
) -> None:
    principal = await make_verifier(jwks_server.url).verify(issuer.token("user-42"))
    assert principal.user_id == "user-42"
    assert principal.claims["aud"] == "intellipost"
    assert "user-42" in repr(principal)
    assert principal.token not in repr(principal)


REFUSED = {
    "expired": (lambda i: i.token(ttl=-60), "expired"),
    "not yet valid (nbf)": (lambda i: i.token(nbf=int(time.time()) + 600), "not yet valid"),
    "issued in the future": (lambda i: i.token(iat=int(time.time()) + 600), "not yet valid"),
    "wrong audience": (lambda i: i.token(aud="someone-else"), "wrong audience"),
    "wrong issuer": (lambda i: i.token(iss="https://evil.example"), "wrong issuer"),
    "tampered payload": (tampered, "bad signature or claims"),
    "alg none": (alg_none_token, "algorithm 'none' not accepted"),
    "HS256 with the public key": (hs256_with_public_key, "algorithm 'HS256' not accepted"),
    "no jti": (lambda i: signed(i, claims(jti=None)), "missing claim jti"),
    "no exp": (lambda i: signed(i, claims(exp=None)), "missing claim exp"),
    "empty subject": (lambda i: signed(i, claims(sub="")), "no subject"),
    "no kid": (
        lambda i: jwt.encode(claims(), i.key, algorithm="EdDSA"),
        "no key id",
    ),
    "not a JWT": (lambda i: "not-a-token", "malformed"),
    "oversized": (lambda i: i.token(pad="x" * 9000), "too long"),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_refuses_every_kind_of_bad_token_with_a_reason(
    case: str, issuer: TokenIssuer, jwks_server: JwksServer
) -> None:
    make, reason = REFUSED[case]
    verifier = make_verifier(jwks_server.url)
    await verifier.verify(issuer.token())  # the keys are loaded: refusals are about the token
    with pytest.raises(InvalidTokenError) as refused:
        await verifier.verify(make(issuer))
    assert refused.value.reason == reason


async def test_a_token_from_a_key_not_in_the_jwks_is_refused(jwks_server: JwksServer) -> None:
    stranger = TokenIssuer()
    with pytest.raises(InvalidTokenError, match="unknown key id"):
        await make_verifier(jwks_server.url).verify(stranger.token())


async def test_a_key_whose_alg_differs_from_the_token_is_refused(
    issuer: TokenIssuer, jwks_server: JwksServer
) -> None:
    # The JWK says ES256 for this kid; a token naming EdDSA must not be checked with it.
    jwk = dict(jwks_server.document["keys"][0])
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    ec_jwk = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True)
    jwks_server.document = {"keys": [{**ec_jwk, "kid": jwk["kid"], "alg": "ES256"}]}
    with pytest.raises(InvalidTokenError, match="algorithm does not match the key"):
        await make_verifier(jwks_server.url).verify(issuer.token())


async def test_es256_tokens_are_accepted_too(jwks_server: JwksServer) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    key = ec.generate_private_key(ec.SECP256R1())
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwks_server.document = {"keys": [{**jwk, "kid": "ec-1", "alg": "ES256", "use": "sig"}]}
    token = jwt.encode(claims(sub="ec-user"), key, algorithm="ES256", headers={"kid": "ec-1"})
    assert (await make_verifier(jwks_server.url).verify(token)).user_id == "ec-user"


async def test_an_unknown_kid_refetches_the_jwks_so_a_new_key_works_at_once(
    issuer: TokenIssuer, jwks_server: JwksServer
) -> None:
    verifier = make_verifier(jwks_server.url)
    await verifier.verify(issuer.token())
    assert jwks_server.hits == 1
    await verifier.verify(issuer.token())
    assert jwks_server.hits == 1  # cached
    rotated_in = TokenIssuer()
    jwks_server.publish(rotated_in, issuer)
    assert (await verifier.verify(rotated_in.token("new-key-user"))).user_id == "new-key-user"
    assert jwks_server.hits == 2


async def test_unknown_kids_refetch_at_a_bounded_rate(
    issuer: TokenIssuer, jwks_server: JwksServer
) -> None:
    verifier = make_verifier(jwks_server.url, min_refresh_seconds=60)
    await verifier.verify(issuer.token())
    for _ in range(20):
        with pytest.raises(InvalidTokenError, match="unknown key id"):
            await verifier.verify(TokenIssuer().token())
    # A flood of forged kids costs the user service no fetch inside the interval.
    assert jwks_server.hits == 1


async def test_a_failing_jwks_fetch_keeps_the_keys_already_known(
    issuer: TokenIssuer, jwks_server: JwksServer
) -> None:
    verifier = make_verifier(jwks_server.url)
    await verifier.verify(issuer.token())
    jwks_server.document = {"not": "a key set"}
    with pytest.raises(InvalidTokenError, match="unknown key id"):
        await verifier.verify(TokenIssuer().token())
    assert (await verifier.verify(issuer.token("still-ok"))).user_id == "still-ok"


async def test_pinned_keys_are_used_without_any_fetch(
    issuer: TokenIssuer, jwks_server: JwksServer
) -> None:
    verifier = make_verifier(jwks_server.url)
    verifier.jwks.set_keys(issuer.jwks())
    assert (await verifier.verify(issuer.token("pinned"))).user_id == "pinned"
    with pytest.raises(InvalidTokenError, match="unknown key id"):
        await verifier.verify(TokenIssuer().token())
    assert jwks_server.hits == 0


def test_generation_changes_only_when_the_key_set_does(issuer: TokenIssuer) -> None:
    cache = JwksCache("http://127.0.0.1:9/unused", max_age_seconds=300, min_refresh_seconds=0)
    cache.set_keys(issuer.jwks())
    first = cache.generation
    cache.set_keys(issuer.jwks())
    assert cache.generation == first
    other = TokenIssuer()
    cache.set_keys({"keys": issuer.jwks()["keys"] + other.jwks()["keys"]})
    assert cache.generation == first + 1
    assert cache.kids == {issuer.kid, other.kid}


def test_unusable_jwks_entries_are_skipped_and_the_good_ones_kept(issuer: TokenIssuer) -> None:
    cache = JwksCache("http://127.0.0.1:9/unused", max_age_seconds=300, min_refresh_seconds=0)
    good = issuer.jwks()["keys"][0]
    cache.set_keys(
        {
            "keys": [
                {"kid": "hmac", "kty": "oct", "k": "c2VjcmV0", "alg": "HS256"},
                {"kid": "broken", "kty": "OKP", "crv": "Ed25519", "x": "!!", "alg": "EdDSA"},
                {"kid": "enc", **{k: v for k, v in good.items() if k != "kid"}, "use": "enc"},
                good,
            ]
        }
    )
    assert cache.kids == {issuer.kid}


def protected_app(verifier: TokenVerifier) -> FastAPI:
    app = FastAPI()
    app.state.verifier = verifier
    install_error_handlers(app)

    @app.get("/whoami")
    async def whoami(user: CurrentUser) -> dict[str, Any]:
        return {"user_id": user.user_id, "log_context_user_id": user_id_var.get()}

    return app


async def test_current_user_dependency_verifies_and_sets_the_log_context(
    issuer: TokenIssuer,
) -> None:
    verifier = make_verifier("http://127.0.0.1:9/unused")
    verifier.jwks.set_keys(issuer.jwks())
    transport = httpx.ASGITransport(app=protected_app(verifier))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        ok = await client.get(
            "/whoami", headers={"Authorization": f"Bearer {issuer.token('user-9')}"}
        )
        assert ok.json() == {"user_id": "user-9", "log_context_user_id": "user-9"}

        for headers in ({}, {"Authorization": "Bearer " + TokenIssuer().token()}):
            refused = await client.get("/whoami", headers=headers)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["type"].endswith("/invalid-token")


def is_stale(cache: JwksCache) -> bool:
    # Read through a call: mypy would otherwise keep an earlier assert's narrowing.
    return cache.stale


async def test_keys_older_than_the_cache_time_are_refetched_at_the_next_verification(
    issuer: TokenIssuer, jwks_server: JwksServer
) -> None:
    verifier = make_verifier(jwks_server.url)
    await verifier.verify(issuer.token())
    assert not is_stale(verifier.jwks)
    verifier.jwks._fetched_at -= 301  # as if the cache time (300 s) had passed
    assert is_stale(verifier.jwks)
    jwks_server.publish(TokenIssuer())  # meanwhile the issuer's key was rotated out
    with pytest.raises(InvalidTokenError, match="unknown key id"):
        await verifier.verify(issuer.token())
    assert jwks_server.hits == 2
    assert not is_stale(verifier.jwks)


def test_pinned_keys_never_go_stale(issuer: TokenIssuer) -> None:
    cache = JwksCache("http://127.0.0.1:9/unused", max_age_seconds=1, min_refresh_seconds=0)
    cache.set_keys(issuer.jwks())
    cache._fetched_at -= 10
    assert not cache.stale


async def test_without_any_key_yet_a_failed_fetch_is_retried_after_a_second(
    issuer: TokenIssuer,
) -> None:
    # The gateway often starts before the user service: its first JWKS fetch fails.
    server = JwksServer(issuer).serve()
    verifier = make_verifier(server.url, min_refresh_seconds=60)
    server.document = {"not": "a key set"}
    with pytest.raises(InvalidTokenError, match="unknown key id"):
        await verifier.verify(issuer.token())
    server.publish(issuer)
    with pytest.raises(InvalidTokenError, match="unknown key id"):
        await verifier.verify(issuer.token())  # inside the second: no new fetch
    assert server.hits == 1
    await asyncio.sleep(1.05)
    assert (await verifier.verify(issuer.token("late"))).user_id == "late"
    assert server.hits == 2
    server.close()
