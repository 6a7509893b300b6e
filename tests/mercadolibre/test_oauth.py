"""Connecting a MercadoLibre account: the whole OAuth flow against the sandbox, PKCE included."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from intellipost.mercadolibre.crypto import TokenCipher
from tests.mercadolibre.support import (
    API,
    DEV_KEY,
    auth,
    connect,
    connection_row,
    start_service,
)
from tests.sandbox.support import SandboxControl, approve, query_of, start_sandbox
from tests.support import Component, TokenIssuer


@pytest.fixture(scope="module")
def issuer() -> Iterator[TokenIssuer]:
    served = TokenIssuer().serve()
    yield served
    served.close()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Component]:
    component = start_sandbox(tmp_path_factory.mktemp("sandbox"))
    yield component
    component.stop()


@pytest.fixture
def control(sandbox: Component) -> SandboxControl:
    ctl = SandboxControl(sandbox.url)
    ctl.reset()
    return ctl


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, sandbox: Component, issuer: TokenIssuer
) -> Iterator[Component]:
    """The embedded defaults: SQLite under var/, OAuth states in process."""
    component = start_service(tmp_path_factory.mktemp("ml"), sandbox=sandbox, issuer=issuer)
    yield component
    component.stop()


def test_connect_link_is_the_sandbox_approve_page_with_an_s256_challenge(
    service: Component, sandbox: Component, issuer: TokenIssuer
) -> None:
    response = httpx.get(
        f"{service.url}{API}/connect", params={"site": "MLB"}, headers=auth(issuer.token("u-1"))
    )
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == 600
    assert body["authorization_url"].startswith(f"{sandbox.url}/authorization?")
    query = query_of(body["authorization_url"])
    assert query["response_type"] == "code"
    assert query["client_id"] == "intellipost-dev"
    assert query["redirect_uri"] == f"{service.url}{API}/callback"
    assert query["state"] == body["state"]
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43  # base64url of a SHA-256, unpadded


def test_whole_flow_connects_the_account_with_pkce(
    service: Component, control: SandboxControl, issuer: TokenIssuer
) -> None:
    token = issuer.token("u-flow")
    connected = connect(service, token, nickname="FLOW_SELLER")
    assert connected["site"] == "MLA"
    assert connected["nickname"] == "FLOW_SELLER"
    assert connected["scopes"] == ["offline_access", "read", "write"]
    assert connected["status"] == "active"
    shown = httpx.get(f"{service.url}{API}/connection", headers=auth(token)).json()
    assert shown == connected
    stats = control.stats()
    # The sandbox demands the verifier for a code issued with a challenge: one good exchange.
    assert stats["grants"] == {"authorization_code": 1}
    assert stats["grant_failures"] == {}
    assert stats["calls"]["GET /users/me"] == 1


def test_reused_state_is_refused_and_spends_nothing(
    service: Component, control: SandboxControl, issuer: TokenIssuer
) -> None:
    token = issuer.token("u-reuse")
    started = httpx.get(f"{service.url}{API}/connect", headers=auth(token)).json()
    location = approve(started["authorization_url"])
    assert httpx.get(location, timeout=30).status_code == 200
    again = httpx.get(location, timeout=30)
    assert again.status_code == 400
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["type"].endswith("/invalid-oauth-state")
    assert control.stats()["grants"] == {"authorization_code": 1}


def test_forged_state_is_refused(
    service: Component, control: SandboxControl, issuer: TokenIssuer
) -> None:
    response = httpx.get(
        f"{service.url}{API}/callback", params={"code": "TG-forged", "state": "made-up"}
    )
    assert response.status_code == 400
    assert response.json()["type"].endswith("/invalid-oauth-state")
    missing = httpx.get(f"{service.url}{API}/callback", params={"code": "TG-forged"})
    assert missing.status_code == 400
    assert control.stats()["grants"] == {}


def test_denied_authorization_connects_nothing(
    service: Component, control: SandboxControl, issuer: TokenIssuer
) -> None:
    token = issuer.token("u-deny")
    started = httpx.get(f"{service.url}{API}/connect", headers=auth(token)).json()
    query = query_of(started["authorization_url"])
    decided = httpx.post(
        started["authorization_url"].split("?")[0],
        data={**query, "decision": "deny"},
    )
    assert decided.status_code == 302
    back = httpx.get(decided.headers["location"], timeout=30)
    assert back.status_code == 400
    assert back.json()["type"].endswith("/authorization-denied")
    assert httpx.get(f"{service.url}{API}/connection", headers=auth(token)).status_code == 404


def test_state_binds_the_connection_to_the_user_who_started_it(
    service: Component, issuer: TokenIssuer
) -> None:
    alice, bob = issuer.token("u-alice"), issuer.token("u-bob")
    started = httpx.get(f"{service.url}{API}/connect", headers=auth(alice)).json()
    # Whoever's browser finishes the flow, the account lands on the user who started it.
    assert httpx.get(approve(started["authorization_url"]), timeout=30).status_code == 200
    assert httpx.get(f"{service.url}{API}/connection", headers=auth(alice)).status_code == 200
    assert httpx.get(f"{service.url}{API}/connection", headers=auth(bob)).status_code == 404


def test_disconnect_removes_the_connection(service: Component, issuer: TokenIssuer) -> None:
    token = issuer.token("u-disconnect")
    connect(service, token)
    deleted = httpx.delete(f"{service.url}{API}/connection", headers=auth(token))
    assert deleted.status_code == 204
    assert httpx.get(f"{service.url}{API}/connection", headers=auth(token)).status_code == 404


def test_routes_other_than_the_callback_need_a_bearer_token(service: Component) -> None:
    for method, path in [
        ("GET", "/connect"),
        ("GET", "/connection"),
        ("DELETE", "/connection"),
        ("POST", "/categories/predict"),
        ("POST", "/listings"),
        ("GET", "/listings/MLA1"),
    ]:
        response = httpx.request(method, f"{service.url}{API}{path}")
        assert response.status_code == 401, path
        assert response.headers["content-type"] == "application/problem+json"


def test_unknown_site_is_a_validation_problem(service: Component, issuer: TokenIssuer) -> None:
    response = httpx.get(
        f"{service.url}{API}/connect", params={"site": "XXX"}, headers=auth(issuer.token())
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "site"


def test_expired_state_is_refused(
    tmp_path: Path, sandbox: Component, control: SandboxControl, issuer: TokenIssuer
) -> None:
    short = start_service(
        tmp_path,
        sandbox=sandbox,
        issuer=issuer,
        INTELLIPOST_MERCADOLIBRE_OAUTH_STATE_TTL_SECONDS="1",
    )
    try:
        started = httpx.get(f"{short.url}{API}/connect", headers=auth(issuer.token())).json()
        location = approve(started["authorization_url"])
        time.sleep(1.5)
        response = httpx.get(location, timeout=30)
        assert response.status_code == 400
        assert response.json()["type"].endswith("/invalid-oauth-state")
        assert control.stats()["grants"] == {}
    finally:
        short.stop()


async def test_tokens_at_rest_are_sealed_not_plaintext(
    tmp_path: Path,
    sandbox: Component,
    issuer: TokenIssuer,
    database_url: str,
) -> None:
    service = start_service(
        tmp_path,
        sandbox=sandbox,
        issuer=issuer,
        INTELLIPOST_MERCADOLIBRE_DATABASE_URL=database_url,
    )
    try:
        connect(service, issuer.token("u-sealed"))
    finally:
        service.stop()
    row = await connection_row(database_url, "u-sealed")
    cipher = TokenCipher(DEV_KEY)
    access = cipher.decrypt(row["access_token"], context="u-sealed:access")
    refresh = cipher.decrypt(row["refresh_token"], context="u-sealed:refresh")
    assert access.startswith("APP_USR-")
    assert refresh.startswith("TG-")
    for column, plain in (("access_token", access), ("refresh_token", refresh)):
        assert row[column] != plain
        assert plain not in row[column]
        assert max(plain.split("-"), key=len) not in row[column]  # not even its random part
    # The decrypted token is the live one: MercadoLibre (the sandbox) accepts it.
    me = httpx.get(sandbox.url + "/users/me", headers={"Authorization": f"Bearer {access}"})
    assert me.status_code == 200
    # Sealed with AES-GCM under the configured key, bound to its owner and kind.
    with pytest.raises(Exception, match="does not decrypt"):
        cipher.decrypt(row["access_token"], context="someone-else:access")
    with pytest.raises(Exception, match="does not decrypt"):
        TokenCipher(AESGCM.generate_key(bit_length=256)).decrypt(
            row["access_token"], context="u-sealed:access"
        )
