"""The MercadoLibre sandbox as a real process: MercadoLibre's shapes, rules and errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.sandbox.support import (
    CLIENT_ID,
    CLIENT_SECRET,
    SandboxControl,
    approve,
    jpeg_header,
    pkce_pair,
    png,
    query_of,
    start_sandbox,
)
from tests.support import Component

REDIRECT = "http://127.0.0.1:9/callback"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Component]:
    component = start_sandbox(
        tmp_path_factory.mktemp("sandbox"), INTELLIPOST_SANDBOX_RATE_LIMIT_PER_MINUTE="5000"
    )
    try:
        yield component
    finally:
        component.stop()


@pytest.fixture
def control(sandbox: Component) -> SandboxControl:
    ctl = SandboxControl(sandbox.url)
    ctl.reset()
    return ctl


def authorize_url(base: str, *, challenge: str | None = None, state: str = "st-1") -> str:
    url = (
        f"{base}/authorization?response_type=code&client_id={CLIENT_ID}"
        f"&redirect_uri={REDIRECT}&state={state}"
    )
    if challenge:
        url += f"&code_challenge={challenge}&code_challenge_method=S256"
    return url


def token_request(base: str, **form: str) -> httpx.Response:
    fields = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **form}
    return httpx.post(f"{base}/oauth/token", data=fields, timeout=10)


def login(base: str, nickname: str = "SELLER_A", site: str = "MLA") -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    location = approve(authorize_url(base, challenge=challenge), nickname=nickname, site_id=site)
    code = query_of(location)["code"]
    response = token_request(
        base,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        code_verifier=verifier,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def upload(base: str, tokens: dict[str, Any], content: bytes) -> httpx.Response:
    return httpx.post(
        f"{base}/pictures/items/upload",
        headers=bearer(tokens),
        files={"file": ("p.png", content, "image/png")},
        timeout=10,
    )


def phone_item(picture_ids: list[str], **changes: Any) -> dict[str, Any]:
    item = {
        "title": "Samsung Galaxy S23 128 GB negro",
        "category_id": "MLA1055",
        "price": 850000,
        "currency_id": "ARS",
        "available_quantity": 3,
        "buying_mode": "buy_it_now",
        "listing_type_id": "gold_special",
        "condition": "new",
        "pictures": [{"id": pid} for pid in picture_ids],
        "attributes": [
            {"id": "BRAND", "value_name": "Samsung"},
            {"id": "MODEL", "value_name": "Galaxy S23"},
        ],
    }
    item.update(changes)
    return item


# --- OAuth ------------------------------------------------------------------------------------


def test_approve_page_is_html_with_a_form_that_redirects_back_with_code_and_state(
    sandbox: Component, control: SandboxControl
) -> None:
    _, challenge = pkce_pair()
    page = httpx.get(authorize_url(sandbox.url, challenge=challenge), timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Approve" in page.text
    assert "<form" in page.text
    form = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "state": "st-form",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "nickname": "FORM_SELLER",
        "site_id": "MLB",
        "decision": "approve",
    }
    decided = httpx.post(sandbox.url + "/authorization", data=form, timeout=10)
    assert decided.status_code == 302
    back = query_of(decided.headers["location"])
    assert back["state"] == "st-form"
    assert back["code"].startswith("TG-")
    denied = httpx.post(
        sandbox.url + "/authorization", data={**form, "decision": "deny"}, timeout=10
    )
    assert query_of(denied.headers["location"]) == {"error": "access_denied", "state": "st-form"}


def test_authorization_with_unknown_client_does_not_redirect(sandbox: Component) -> None:
    url = authorize_url(sandbox.url).replace(CLIENT_ID, "someone-else") + "&approve=1"
    response = httpx.get(url, timeout=10)
    assert response.status_code == 400
    assert "location" not in response.headers


def test_code_exchange_gives_mercadolibre_tokens_and_users_me(
    sandbox: Component, control: SandboxControl
) -> None:
    tokens = login(sandbox.url, nickname="SELLER_BR", site="MLB")
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 21600
    assert tokens["scope"] == "offline_access read write"
    assert tokens["access_token"].startswith("APP_USR-")
    me = httpx.get(sandbox.url + "/users/me", headers=bearer(tokens), timeout=10).json()
    assert (me["id"], me["nickname"], me["site_id"]) == (tokens["user_id"], "SELLER_BR", "MLB")


def test_pkce_verifier_must_match_the_challenge_and_a_code_is_single_use(
    sandbox: Component, control: SandboxControl
) -> None:
    verifier, challenge = pkce_pair()
    code = query_of(approve(authorize_url(sandbox.url, challenge=challenge)))["code"]
    common = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    wrong = token_request(sandbox.url, **common, code_verifier=pkce_pair()[0])
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    assert set(wrong.json()) == {"error", "error_description"}
    # The failed attempt spent the code, as a real authorization server does.
    again = token_request(sandbox.url, **common, code_verifier=verifier)
    assert again.json()["error"] == "invalid_grant"

    code = query_of(approve(authorize_url(sandbox.url, challenge=challenge)))["code"]
    missing = token_request(
        sandbox.url, grant_type="authorization_code", code=code, redirect_uri=REDIRECT
    )
    assert missing.json()["error"] == "invalid_grant"
    assert control.stats()["grant_failures"]["authorization_code"] == 3


def test_bad_client_secret_is_invalid_client(sandbox: Component, control: SandboxControl) -> None:
    response = httpx.post(
        sandbox.url + "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "client_id": CLIENT_ID,
            "client_secret": "wrong",
            "refresh_token": "TG-x",
        },
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"


def test_refresh_token_is_single_use(sandbox: Component, control: SandboxControl) -> None:
    tokens = login(sandbox.url)
    first = token_request(
        sandbox.url, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert first.status_code == 200
    assert first.json()["refresh_token"] != tokens["refresh_token"]
    reused = token_request(
        sandbox.url, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    fresh = httpx.get(
        sandbox.url + "/users/me",
        headers={"Authorization": f"Bearer {first.json()['access_token']}"},
        timeout=10,
    )
    assert fresh.status_code == 200


def test_calls_without_a_valid_token_get_401_in_mercadolibre_shape(sandbox: Component) -> None:
    response = httpx.get(
        sandbox.url + "/users/me", headers={"Authorization": "Bearer APP_USR-forged"}, timeout=10
    )
    assert response.status_code == 401
    assert response.json() == {
        "message": "invalid access token",
        "error": "invalid_token",
        "status": 401,
        "cause": [],
    }


# --- Categories -------------------------------------------------------------------------------


def test_domain_discovery_finds_the_category_and_brand_of_a_title(sandbox: Component) -> None:
    response = httpx.get(
        sandbox.url + "/sites/MLA/domain_discovery/search",
        params={"q": "Celular Samsung Galaxy S23 128GB", "limit": 2},
        timeout=10,
    )
    assert response.status_code == 200
    first = response.json()[0]
    assert first["category_id"] == "MLA1055"
    assert first["domain_id"] == "MLA-CELLPHONES"
    assert {"id": "BRAND", "name": "Marca", "value_id": "206", "value_name": "Samsung"} in first[
        "attributes"
    ]
    bad = httpx.get(
        sandbox.url + "/sites/MLA/domain_discovery/search", params={"q": "x", "limit": 9}
    )
    assert bad.status_code == 400
    assert bad.json()["error"] == "bad_request"


def test_category_has_path_settings_and_required_attributes(sandbox: Component) -> None:
    category = httpx.get(sandbox.url + "/categories/MLB1055", timeout=10).json()
    assert category["name"] == "Celulares e Smartphones"
    assert [p["id"] for p in category["path_from_root"]] == ["MLB1051", "MLB1055"]
    assert category["settings"]["max_title_length"] == 60
    assert category["settings"]["currencies"] == ["BRL"]
    attributes = httpx.get(sandbox.url + "/categories/MLA1055/attributes", timeout=10).json()
    required = [a["id"] for a in attributes if a["tags"].get("required")]
    assert required == ["BRAND", "MODEL"]
    missing = httpx.get(sandbox.url + "/categories/MLA999999", timeout=10)
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"


# --- Pictures, items, descriptions -----------------------------------------------------------


def test_picture_upload_takes_jpeg_and_png_and_refuses_other_bytes(sandbox: Component) -> None:
    tokens = login(sandbox.url)
    uploaded = upload(sandbox.url, tokens, png(700, 500))
    assert uploaded.status_code == 201
    body = uploaded.json()
    assert body["max_size"] == "700x500"
    assert body["variations"][0]["url"].startswith(sandbox.url)
    served = httpx.get(body["variations"][0]["url"], timeout=10)
    assert served.content == png(700, 500)
    assert upload(sandbox.url, tokens, jpeg_header(1200, 900)).json()["max_size"] == "1200x900"
    refused = upload(sandbox.url, tokens, b"GIF89a not a picture we take")
    assert refused.status_code == 400
    assert refused.json()["cause"][0]["code"] == "picture.format.invalid"


def test_item_validation_lists_every_cause_and_creates_nothing(sandbox: Component) -> None:
    tokens = login(sandbox.url)
    bad = phone_item(
        ["nope"],
        title="T" * 61,
        price=-5,
        currency_id="BRL",
        attributes=[{"id": "BRAND", "value_name": "Samsung"}],
    )
    response = httpx.post(sandbox.url + "/items", json=bad, headers=bearer(tokens), timeout=10)
    assert response.status_code == 400
    body = response.json()
    assert (body["error"], body["status"]) == ("validation_error", 400)
    codes = {c["code"] for c in body["cause"]}
    assert codes == {
        "item.title.length.invalid",
        "item.price.invalid",
        "item.currency_id.invalid",
        "item.pictures.invalid",
        "item.attributes.missing_required",
    }


def test_item_lifecycle_with_description_post_once_then_put(sandbox: Component) -> None:
    tokens = login(sandbox.url)
    picture = upload(sandbox.url, tokens, png()).json()["id"]
    created = httpx.post(
        sandbox.url + "/items", json=phone_item([picture]), headers=bearer(tokens), timeout=10
    )
    assert created.status_code == 201
    item = created.json()
    assert item["id"].startswith("MLA")
    assert item["status"] == "active"
    assert item["pictures"][0]["id"] == picture
    path = f"{sandbox.url}/items/{item['id']}/description"
    first = httpx.post(path, json={"plain_text": "Nuevo."}, headers=bearer(tokens), timeout=10)
    assert first.status_code == 201
    second = httpx.post(path, json={"plain_text": "Otra."}, headers=bearer(tokens), timeout=10)
    assert second.status_code == 400
    assert second.json()["cause"][0]["code"] == "item.description.already_exists"
    put = httpx.put(path, json={"plain_text": "Otra."}, headers=bearer(tokens), timeout=10)
    assert put.status_code == 200
    assert httpx.get(path, timeout=10).json()["plain_text"] == "Otra."
    updated = httpx.put(
        f"{sandbox.url}/items/{item['id']}",
        json={"price": 800000, "status": "paused"},
        headers=bearer(tokens),
        timeout=10,
    )
    assert (updated.json()["price"], updated.json()["status"]) == (800000, "paused")
    read = httpx.get(f"{sandbox.url}/items/{item['id']}", timeout=10).json()
    assert read["status"] == "paused"
    page = httpx.get(item["permalink"], timeout=10)
    assert page.status_code == 200
    assert "Samsung Galaxy S23" in page.text


def test_only_the_seller_may_change_an_item(sandbox: Component) -> None:
    owner = login(sandbox.url, nickname="OWNER")
    other = login(sandbox.url, nickname="OTHER")
    picture = upload(sandbox.url, owner, png()).json()["id"]
    item = httpx.post(
        sandbox.url + "/items", json=phone_item([picture]), headers=bearer(owner), timeout=10
    ).json()
    response = httpx.put(
        f"{sandbox.url}/items/{item['id']}", json={"price": 1}, headers=bearer(other), timeout=10
    )
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


# --- Switches and counters -------------------------------------------------------------------


def test_fail_next_answers_the_chosen_status_with_retry_after_then_recovers(
    sandbox: Component, control: SandboxControl
) -> None:
    control.faults(
        fail_next=2, fail_status=503, retry_after=7, route="GET /categories/{category_id}"
    )
    url = sandbox.url + "/categories/MLA1055"
    first, second, third = (httpx.get(url, timeout=10) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (503, 503, 200)
    assert first.headers["retry-after"] == "7"
    assert first.json()["error"] == "service_unavailable"
    # Other routes were not touched by the switch.
    assert httpx.get(sandbox.url + "/categories/MLA1051/attributes", timeout=10).status_code == 200
    stats = control.stats()
    assert stats["calls"]["GET /categories/{category_id}"] == 3
    assert stats["injected"] == {"GET /categories/{category_id}": 2}


def test_above_the_per_app_rate_the_sandbox_answers_429_with_retry_after(
    sandbox: Component, control: SandboxControl
) -> None:
    control.faults(rate_limit_per_minute=5)
    statuses = [httpx.get(sandbox.url + "/categories/MLA1055", timeout=10) for _ in range(7)]
    assert [r.status_code for r in statuses] == [200] * 5 + [429] * 2
    limited = statuses[-1]
    assert limited.json()["error"] == "too_many_requests"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert control.stats()["rate_limited"] == {"GET /categories/{category_id}": 2}


def test_injected_latency_delays_answers(sandbox: Component, control: SandboxControl) -> None:
    control.faults(latency_ms=300)
    began = time.monotonic()
    assert httpx.get(sandbox.url + "/categories/MLA1055", timeout=10).status_code == 200
    # A lower bound: the switch must have been applied (not a performance assertion).
    assert time.monotonic() - began >= 0.3


def test_bad_switches_are_refused_as_problem_json(sandbox: Component) -> None:
    response = httpx.post(sandbox.url + "/_sandbox/faults", json={"error_rate": 3}, timeout=10)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


def test_health_endpoints_are_the_fleets(sandbox: Component) -> None:
    assert httpx.get(sandbox.url + "/health/ready", timeout=10).status_code == 200
    missing = httpx.get(sandbox.url + "/health/nothing", timeout=10)
    assert missing.headers["content-type"] == "application/problem+json"
