"""The user service over HTTP, as a real process on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from intellipost.user.keys import private_pem, public_jwk
from tests.support import (
    Component,
    TokenIssuer,
    base_env,
    create_pg_database,
    drop_pg_database,
    free_port,
)
from tests.user.conftest import FAST_ARGON2_ENV, GOOD_PASSWORD

MAX_ATTEMPTS = 3


class UserProcess:
    """A running user service, the key it signs with, and every secret the tests used."""

    def __init__(self, component: Component, key: Ed25519PrivateKey, database_url: str) -> None:
        self.component = component
        self.key = key
        self.kid = public_jwk(key.public_key())["kid"]
        self.database_url = database_url
        self.secrets: set[str] = set()
        self.client = httpx.Client(base_url=component.url, timeout=20)

    def post(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, json=body, **kwargs)

    def register(self, password: str = GOOD_PASSWORD) -> str:
        address = f"ana.{uuid.uuid4().hex[:8]}@example.com"
        self.secrets.add(password)
        body = {"email": address, "password": password, "first_name": "Ana", "last_name": "Díaz"}
        response = self.post("/api/v1/auth/register", body)
        assert response.status_code == 201, response.text
        return address

    def login(self, address: str, password: str = GOOD_PASSWORD, **extra: Any) -> dict[str, Any]:
        response = self.post(
            "/api/v1/auth/login", {"email": address, "password": password, **extra}
        )
        assert response.status_code == 200, response.text
        tokens: dict[str, Any] = response.json()
        self.secrets.update({tokens["access_token"], tokens["refresh_token"]})
        return tokens

    def forge(self, **overrides: Any) -> str:
        """A token signed with the service's own key but with the given claims changed."""
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
        return jwt.encode(claims, self.key, algorithm="EdDSA", headers={"kid": self.kid})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def start_user_service(tmp: Path, database_url: str, key: Ed25519PrivateKey) -> Component:
    env = base_env(
        tmp,
        INTELLIPOST_USER_DATABASE_URL=database_url,
        INTELLIPOST_USER_JWT_PRIVATE_KEY=private_pem(key).decode(),
        INTELLIPOST_USER_MAX_LOGIN_ATTEMPTS=str(MAX_ATTEMPTS),
        **FAST_ARGON2_ENV,
    )
    port = free_port()
    return Component("user", port, env, tmp / f"user-{port}.log").start(wait="/health/startup")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('userdb') / 'user.db'}"
        return
    url = await create_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


@pytest.fixture(scope="module")
def user(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UserProcess]:
    tmp = tmp_path_factory.mktemp("user")
    key = Ed25519PrivateKey.generate()
    component = start_user_service(tmp, database, key)
    service = UserProcess(component, key, database)
    try:
        yield service
    finally:
        service.client.close()
        component.stop()


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "instance", "correlation_id"} <= set(body)
    assert body["correlation_id"] == response.headers["x-correlation-id"]
    return body


def test_register_login_me_refresh_logout(user: UserProcess) -> None:
    address = user.register()
    tokens = user.login(f"  {address.upper()} ")
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 1800
    assert tokens["refresh_expires_in"] == 24 * 3600

    me = user.client.get("/api/v1/users/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    profile = me.json()
    assert profile["email"] == address
    assert (
        profile["id"]
        == jwt.decode(tokens["access_token"], options={"verify_signature": False})["sub"]
    )
    assert "password_hash" not in profile

    patched = user.client.patch(
        "/api/v1/users/me",
        json={"first_name": "  Ana María "},
        headers=bearer(tokens["access_token"]),
    )
    assert patched.status_code == 200
    assert (patched.json()["first_name"], patched.json()["last_name"]) == ("Ana María", "Díaz")

    refreshed = user.post("/api/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    assert refreshed.headers["cache-control"] == "no-store"
    pair = refreshed.json()
    user.secrets.update({pair["access_token"], pair["refresh_token"]})
    assert pair["refresh_token"] != tokens["refresh_token"]

    logout = user.client.post("/api/v1/auth/logout", headers=bearer(pair["access_token"]))
    assert logout.status_code == 204
    after = user.post("/api/v1/auth/refresh", {"refresh_token": pair["refresh_token"]})
    assert_problem(after, 401)


def test_a_weak_password_gets_one_422_listing_every_rule(user: UserProcess) -> None:
    user.secrets.add("weakpass")
    response = user.post(
        "/api/v1/auth/register",
        {"email": "bad@", "password": "weakpass", "first_name": "A", "last_name": "B"},
    )
    body = assert_problem(response, 422)
    assert body["type"].endswith("/validation-error")
    assert sorted(e["type"] for e in body["errors"]) == [
        "email",
        "password_policy.digit",
        "password_policy.special",
        "password_policy.uppercase",
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "a@example.com", "first_name": "A", "last_name": "B"}, "password"),
        (
            {"email": "a@example.com", "password": "x", "first_name": "", "last_name": "B"},
            "first_name",
        ),
        (
            {
                "email": "a@example.com",
                "password": "x",
                "first_name": "A",
                "last_name": "B",
                "is_admin": True,
            },
            "is_admin",
        ),
    ],
)
def test_malformed_bodies_get_a_problem_naming_the_field(
    user: UserProcess, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(user.post("/api/v1/auth/register", body), 422)
    assert field in {e["field"] for e in problem["errors"]}


def test_a_taken_email_is_409(user: UserProcess) -> None:
    address = user.register()
    body = {"email": address, "password": GOOD_PASSWORD, "first_name": "A", "last_name": "B"}
    assert_problem(user.post("/api/v1/auth/register", body), 409)


def test_wrong_password_and_unknown_email_answer_identically(user: UserProcess) -> None:
    address = user.register()
    user.secrets.add("Wr0ng-password!")
    wrong = user.post("/api/v1/auth/login", {"email": address, "password": "Wr0ng-password!"})
    unknown = user.post(
        "/api/v1/auth/login", {"email": f"x{address}", "password": "Wr0ng-password!"}
    )
    for response in (wrong, unknown):
        assert_problem(response, 401)
    same = ("type", "title", "status", "detail", "instance")
    assert {k: wrong.json()[k] for k in same} == {k: unknown.json()[k] for k in same}
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"]
    assert set(wrong.headers) == set(unknown.headers)


def test_lockout_is_423_with_retry_after(user: UserProcess) -> None:
    address = user.register()
    statuses = [
        user.post("/api/v1/auth/login", {"email": address, "password": "Wr0ng-password!"})
        for _ in range(MAX_ATTEMPTS)
    ]
    assert [r.status_code for r in statuses] == [401] * (MAX_ATTEMPTS - 1) + [423]
    locked = user.post("/api/v1/auth/login", {"email": address, "password": GOOD_PASSWORD})
    body = assert_problem(locked, 423)
    assert 0 < int(locked.headers["retry-after"]) <= 15 * 60
    assert body["type"].endswith("/account-locked")


def test_a_reused_refresh_token_ends_the_session(user: UserProcess) -> None:
    tokens = user.login(user.register())
    rotated = user.post("/api/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    user.secrets.add(rotated.json()["refresh_token"])
    replay = user.post("/api/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert_problem(replay, 401)
    successor = user.post(
        "/api/v1/auth/refresh", {"refresh_token": rotated.json()["refresh_token"]}
    )
    assert_problem(successor, 401)
    [event] = user.component.wait_for_log(
        lambda r: (
            r.get("security_event") == "refresh_token_reuse"
            and r.get("correlation_id") == replay.headers["x-correlation-id"]
        )
    )
    assert event["severity"] == "high"


def race_refreshes(urls: list[str], token: str) -> list[int]:
    """Send the same refresh to every URL at the same instant, one thread each."""
    barrier = threading.Barrier(len(urls))
    statuses: list[int] = []

    def refresh(url: str) -> None:
        with httpx.Client(base_url=url, timeout=20) as client:
            barrier.wait()
            answer = client.post("/api/v1/auth/refresh", json={"refresh_token": token})
            statuses.append(answer.status_code)

    threads = [threading.Thread(target=refresh, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_concurrent_refreshes_across_two_replicas_let_exactly_one_through(
    user: UserProcess, tmp_path: Path
) -> None:
    # A second process on the same database: the rule must hold across replicas.
    replica = start_user_service(tmp_path, user.database_url, user.key)
    try:
        for _ in range(3):
            tokens = user.login(user.register())
            statuses = race_refreshes(
                [user.component.url, replica.url] * 4, tokens["refresh_token"]
            )
            assert sorted(statuses) == [200] + [401] * 7
    finally:
        replica.stop()


def test_jwks_publishes_the_key_named_by_the_tokens(user: UserProcess) -> None:
    tokens = user.login(user.register())
    response = user.client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert "max-age" in response.headers["cache-control"]
    [jwk] = response.json()["keys"]
    assert jwk["kid"] == jwt.get_unverified_header(tokens["access_token"])["kid"] == user.kid
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert "d" not in jwk  # public half only


@pytest.mark.parametrize(
    "forgery",
    ["stranger key", "expired", "wrong audience", "wrong issuer", "no token", "not bearer"],
)
def test_the_service_verifies_tokens_itself(user: UserProcess, forgery: str) -> None:
    # Defence in depth: a request that never went through the gateway gets no further.
    headers = {
        "stranger key": bearer(TokenIssuer().token()),
        "expired": bearer(user.forge(exp=int(time.time()) - 60)),
        "wrong audience": bearer(user.forge(aud="other")),
        "wrong issuer": bearer(user.forge(iss="other")),
        "no token": {},
        "not bearer": {"Authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l"},
    }[forgery]
    response = user.client.get("/api/v1/users/me", headers=headers)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_patch_me_refuses_fields_it_does_not_own(user: UserProcess) -> None:
    address = user.register()
    tokens = user.login(address)
    response = user.client.patch(
        "/api/v1/users/me",
        json={"email": "other@example.com"},
        headers=bearer(tokens["access_token"]),
    )
    assert_problem(response, 422)
    me = user.client.get("/api/v1/users/me", headers=bearer(tokens["access_token"]))
    assert me.json()["email"] == address


def test_password_change_over_http_ends_the_other_sessions(user: UserProcess) -> None:
    address = user.register()
    here = user.login(address)
    there = user.login(address)
    user.secrets.add("N3w-password!!")
    wrong = user.post(
        "/api/v1/users/me/password",
        {"current_password": "Wr0ng-password!", "new_password": "N3w-password!!"},
        headers=bearer(here["access_token"]),
    )
    assert_problem(wrong, 403)
    changed = user.post(
        "/api/v1/users/me/password",
        {"current_password": GOOD_PASSWORD, "new_password": "N3w-password!!"},
        headers=bearer(here["access_token"]),
    )
    assert changed.status_code == 204
    assert_problem(
        user.post("/api/v1/auth/refresh", {"refresh_token": there["refresh_token"]}), 401
    )
    assert user.post("/api/v1/auth/refresh", {"refresh_token": here["refresh_token"]}).is_success
    assert user.login(address, "N3w-password!!")


def test_user_id_is_on_every_line_of_an_authenticated_request(user: UserProcess) -> None:
    tokens = user.login(user.register())
    user_id = jwt.decode(tokens["access_token"], options={"verify_signature": False})["sub"]
    correlation = f"uid-check-{uuid.uuid4().hex}"
    response = user.client.patch(
        "/api/v1/users/me",
        json={"last_name": "Pérez"},
        headers={**bearer(tokens["access_token"]), "X-Correlation-ID": correlation},
    )
    assert response.status_code == 200
    lines = user.component.wait_for_log(
        lambda r: r.get("correlation_id") == correlation and r.get("event_type") == "access"
    )
    assert lines
    lines = [r for r in user.component.log_records() if r.get("correlation_id") == correlation]
    assert {r.get("event_type") for r in lines} >= {"audit", "access"}
    assert all(r.get("user_id") == user_id for r in lines), lines


def test_security_events_audits_and_no_secret_in_any_log_line(user: UserProcess) -> None:
    # Runs last in the module: the log holds everything the tests above did.
    records = user.component.log_records()
    events = {r.get("security_event") for r in records}
    assert {"failed_login", "account_locked", "refresh_token_reuse", "invalid_token"} <= events
    audits = {r.get("action") for r in records if r.get("event_type") == "audit"}
    assert {"register", "password_change", "logout"} <= audits
    text = user.component.output()
    assert user.secrets
    leaked = [secret for secret in user.secrets if secret in text]
    assert not leaked
    assert "$argon2id$" not in text
