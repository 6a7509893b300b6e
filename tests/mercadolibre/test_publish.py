"""Predicting categories and publishing listings through the service, against the sandbox."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.mercadolibre.support import API, PictureSource, auth, connect, listing, start_service
from tests.sandbox.support import SandboxControl, jpeg_header, png, start_sandbox
from tests.support import Component, TokenIssuer

SELLER = "u-seller"


@dataclass
class Stack:
    service: Component
    sandbox: Component
    control: SandboxControl
    issuer: TokenIssuer
    pictures: PictureSource
    token: str

    def publish(
        self, body: dict[str, Any], key: str | None = None, token: str | None = None
    ) -> httpx.Response:
        headers = auth(token or self.token)
        if key is not None:
            headers["Idempotency-Key"] = key
        return httpx.post(
            f"{self.service.url}{API}/listings", json=body, headers=headers, timeout=60
        )

    def item(self, item_id: str) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.sandbox.url}/items/{item_id}").json()
        return body


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("publish")
    issuer = TokenIssuer().serve()
    token = issuer.token(SELLER, ttl=3600)
    pictures = PictureSource(token=token).serve()
    sandbox = start_sandbox(tmp)
    service = None
    try:
        service = start_service(
            tmp,
            sandbox=sandbox,
            issuer=issuer,
            INTELLIPOST_MERCADOLIBRE_PICTURE_SOURCE_ORIGINS=pictures.origin,
        )
        connect(service, token, nickname="PUBLISHER")
        yield Stack(service, sandbox, SandboxControl(sandbox.url), issuer, pictures, token)
    finally:
        if service is not None:
            service.stop()
        sandbox.stop()
        pictures.close()
        issuer.close()


@pytest.fixture
def s(stack: Stack) -> Stack:
    stack.control.reset()
    stack.pictures.seen_authorization.clear()
    return stack


def key() -> str:
    return f"test-{uuid.uuid4()}"


# --- Categories -------------------------------------------------------------------------------


def test_predict_gives_candidates_with_required_attributes_and_title_limit(s: Stack) -> None:
    response = httpx.post(
        f"{s.service.url}{API}/categories/predict",
        json={"title": "Zapatillas Nike Air Max hombre talle 42", "site": "MLA"},
        headers=auth(s.token),
    )
    assert response.status_code == 200
    first = response.json()["candidates"][0]
    assert first["category_id"] == "MLA109027"
    assert first["category_name"] == "Zapatillas"
    assert first["domain_id"] == "MLA-SNEAKERS"
    assert first["max_title_length"] == 60
    assert first["required_attributes"] == [
        {"id": "BRAND", "name": "Marca"},
        {"id": "MODEL", "name": "Modelo"},
        {"id": "GENDER", "name": "Género"},
    ]
    assert first["suggested_attributes"] == [
        {"id": "BRAND", "value_id": "14810", "value_name": "Nike"}
    ]
    assert [p["id"] for p in first["path_from_root"]] == ["MLA1430", "MLA109027"]


def test_category_rules_are_cached_between_predictions(s: Stack) -> None:
    body = {"title": "Bicicleta rodado 29 Venzo", "site": "MLA"}
    for _ in range(3):
        response = httpx.post(
            f"{s.service.url}{API}/categories/predict", json=body, headers=auth(s.token)
        )
        assert response.json()["candidates"][0]["category_id"] == "MLA1292"
    calls = s.control.stats()["calls"]
    assert calls["GET /sites/{site_id}/domain_discovery/search"] == 3
    assert calls["GET /categories/{category_id}"] == 1


def test_predict_refuses_bad_input(s: Stack) -> None:
    for body in ({"title": "", "site": "MLA"}, {"title": "Mesa", "site": "ZZZ"}, {"site": "MLA"}):
        response = httpx.post(
            f"{s.service.url}{API}/categories/predict", json=body, headers=auth(s.token)
        )
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
    assert s.control.stats()["total"] == 0


# --- Publishing -------------------------------------------------------------------------------


def test_publish_uploads_two_pictures_creates_the_item_and_its_description(s: Stack) -> None:
    s.pictures.pictures["front"] = png(800, 800, (10, 120, 200))
    body = listing(
        pictures=[
            s.pictures.url("front"),
            {"data": base64.b64encode(jpeg_header(1200, 1200)).decode(), "filename": "back.jpg"},
        ]
    )
    response = s.publish(body, key())
    assert response.status_code == 201, response.text
    out = response.json()
    assert out["status"] == "active"
    assert out["product_id"] == "prod-1"
    assert out["permalink"].startswith(s.sandbox.url)
    item = s.item(out["item_id"])
    assert item["title"] == body["title"]
    assert (item["price"], item["currency_id"], item["available_quantity"]) == (850000, "ARS", 2)
    assert [p["size"] for p in item["pictures"]] == ["800x800", "1200x1200"]
    description = httpx.get(f"{s.sandbox.url}/items/{out['item_id']}/description").json()
    assert description["plain_text"] == body["description"]
    # The picture URL was fetched with the caller's own token, as the product service needs.
    assert s.pictures.seen_authorization == [f"Bearer {s.token}"]
    uploaded = httpx.get(item["pictures"][0]["url"]).content
    assert uploaded == s.pictures.pictures["front"]

    read = httpx.get(f"{s.service.url}{API}/listings/{out['item_id']}", headers=auth(s.token))
    assert read.status_code == 200
    detail = read.json()
    assert (detail["title"], detail["status"], len(detail["pictures"])) == (
        body["title"],
        "active",
        2,
    )


def test_a_retry_with_the_same_key_returns_the_same_item_and_lists_once(s: Stack) -> None:
    same = key()
    first = s.publish(listing(), same)
    second = s.publish(listing(), same)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    stats = s.control.stats()["calls"]
    assert stats["POST /items"] == 1
    assert stats["POST /pictures/items/upload"] == 1


async def test_a_concurrent_request_with_the_same_key_is_told_to_retry(s: Stack) -> None:
    s.control.faults(latency_ms=300)
    same = key()
    headers = {**auth(s.token), "Idempotency-Key": same}
    url = f"{s.service.url}{API}/listings"
    async with httpx.AsyncClient(timeout=60) as client:
        first = asyncio.create_task(client.post(url, json=listing(), headers=headers))
        # The first request spends >= 1.2 s on MercadoLibre's (delayed) answers.
        await asyncio.sleep(0.6)
        second = await client.post(url, json=listing(), headers=headers)
        done = await first
    assert done.status_code == 201, done.text
    assert second.status_code == 409
    assert second.json()["type"].endswith("/idempotency-key-in-use")
    assert second.headers["retry-after"] == "1"
    assert s.control.calls("POST /items") == 1
    replay = s.publish(listing(), same)
    assert replay.json()["item_id"] == done.json()["item_id"]


def test_same_key_with_a_different_body_is_refused(s: Stack) -> None:
    same = key()
    assert s.publish(listing(), same).status_code == 201
    changed = s.publish(listing(price="1.00"), same)
    assert changed.status_code == 422
    assert changed.json()["type"].endswith("/idempotency-key-reused")
    assert s.control.calls("POST /items") == 1


def test_publishing_needs_an_idempotency_key(s: Stack) -> None:
    response = s.publish(listing())
    assert response.status_code == 400
    assert response.json()["type"].endswith("/idempotency-key-required")
    assert s.control.stats()["total"] == 0


def test_mercadolibre_validation_errors_come_back_as_422_with_its_causes(s: Stack) -> None:
    body = listing(attributes=[{"id": "BRAND", "value_name": "Samsung"}])
    same = key()
    response = s.publish(body, same)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/mercadolibre-validation")
    assert problem["mercadolibre_error"] == "validation_error"
    assert [c["code"] for c in problem["cause"]] == ["item.attributes.missing_required"]
    assert "MODEL" in problem["cause"][0]["message"]
    assert "MODEL" in problem["detail"]
    # Nothing was listed, so the seller may fix the body and send it again with the key.
    fixed = s.publish(listing(), same)
    assert fixed.status_code == 201


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"title": "Samsung Galaxy S23 " + "muy " * 15}, "title"),
        ({"currency": "BRL"}, "currency"),
        ({"category_id": "MLB1055"}, "category_id"),
        ({"category_id": "MLA1051"}, "category_id"),
        ({"category_id": "MLA999999"}, "category_id"),
        ({"pictures": [{"data": base64.b64encode(b"GIF89a....").decode()}]}, "pictures.0"),
        ({"pictures": ["http://203.0.113.9/stolen.png"]}, "pictures.0"),
        ({"pictures": [{"data": "not base64!"}]}, "pictures.0.data"),
        ({"pictures": []}, "pictures"),
        ({"price": "0"}, "price"),
        ({"quantity": 0}, "quantity"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_bad_listings_are_refused_before_anything_reaches_mercadolibre(
    s: Stack, changes: dict[str, Any], field: str
) -> None:
    response = s.publish(listing(**changes), key())
    assert response.status_code == 422, response.text
    problem = response.json()
    assert field in {e["field"] for e in problem["errors"]}
    calls = s.control.stats()["calls"]
    assert "POST /items" not in calls
    assert "POST /pictures/items/upload" not in calls


def test_a_user_without_a_connection_is_told_to_connect(s: Stack) -> None:
    response = s.publish(listing(), key(), token=s.issuer.token("u-stranger"))
    assert response.status_code == 409
    assert response.json()["type"].endswith("/mercadolibre-not-connected")


def test_listings_of_other_users_are_not_found(s: Stack) -> None:
    item_id = s.publish(listing(), key()).json()["item_id"]
    other = httpx.get(
        f"{s.service.url}{API}/listings/{item_id}", headers=auth(s.issuer.token("u-other"))
    )
    assert other.status_code == 404


# --- Back-off and retries ---------------------------------------------------------------------


def test_transient_5xx_on_item_creation_is_retried_and_the_item_exists_once(s: Stack) -> None:
    s.control.faults(fail_next=2, fail_status=503, retry_after=0, route="POST /items")
    response = s.publish(listing(), key())
    assert response.status_code == 201, response.text
    stats = s.control.stats()
    assert stats["calls"]["POST /items"] == 3
    assert stats["injected"] == {"POST /items": 2}
    assert s.item(response.json()["item_id"])["status"] == "active"


def test_429_is_honoured_with_its_retry_after(s: Stack) -> None:
    s.control.faults(
        fail_next=1, fail_status=429, retry_after=1, route="POST /pictures/items/upload"
    )
    response = s.publish(listing(), key())
    assert response.status_code == 201, response.text
    uploads = [
        r["at"] for r in s.control.stats()["recent"] if r["route"] == "POST /pictures/items/upload"
    ]
    assert len(uploads) == 2
    # The second attempt came no sooner than MercadoLibre asked (a lower bound, not a timing).
    assert uploads[1] - uploads[0] >= 0.95


def test_idempotent_reads_are_retried_after_500(s: Stack) -> None:
    item_id = s.publish(listing(), key()).json()["item_id"]
    s.control.reset()
    s.control.faults(fail_next=2, fail_status=500, route="GET /items/{item_id}")
    response = httpx.get(f"{s.service.url}{API}/listings/{item_id}", headers=auth(s.token))
    assert response.status_code == 200
    assert s.control.calls("GET /items/{item_id}") == 3


def test_exhausted_retries_give_503_with_retry_after_and_a_retry_resumes_without_duplicating(
    s: Stack,
) -> None:
    same = key()
    s.control.faults(fail_next=4, fail_status=500, route="POST /items/{item_id}/description")
    failed = s.publish(listing(), same)
    assert failed.status_code == 503
    assert failed.json()["type"].endswith("/mercadolibre-unavailable")
    assert int(failed.headers["retry-after"]) >= 1
    assert s.control.calls("POST /items/{item_id}/description") == 4  # 1 + 3 retries
    # The item exists already; the retry finishes the description and lists nothing new.
    retried = s.publish(listing(), same)
    assert retried.status_code == 201, retried.text
    assert s.control.calls("POST /items") == 1
    description = httpx.get(f"{s.sandbox.url}/items/{retried.json()['item_id']}/description")
    assert description.json()["plain_text"] == listing()["description"]


def test_an_ambiguous_failure_of_item_creation_is_not_blindly_repeated(s: Stack) -> None:
    s.control.faults(fail_next=1, fail_status=500, route="POST /items")
    response = s.publish(listing(), key())
    assert response.status_code == 503
    # A 500 may mean the item was created: a second POST could list it twice.
    assert s.control.calls("POST /items") == 1
