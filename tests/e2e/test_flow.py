"""What a seller does, end to end: photos and a prompt in, a published listing out.

The five components and the MercadoLibre sandbox run as real processes, all reached
through the gateway, on the embedded default (SQLite) and on PostgreSQL (one database per
service). Faults are real too: a stopped AI content process, a sandbox answering errors.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.product.support import API, auth, create, jpeg, sample_photos, wait_for_status
from tests.sandbox.support import SandboxControl, approve
from tests.support import (
    Component,
    base_env,
    create_pg_database,
    drop_pg_database,
    free_port,
)

SERVICES = ("user", "ai_content", "mercadolibre", "product")
FAST_ARGON2 = {
    "INTELLIPOST_USER_ARGON2_TIME_COST": "1",
    "INTELLIPOST_USER_ARGON2_MEMORY_COST_KIB": "1024",
    "INTELLIPOST_USER_ARGON2_PARALLELISM": "1",
}
PASSWORD = "Corr3ct-Horse!"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@dataclass
class Fleet:
    gateway: Component
    services: dict[str, Component]
    sandbox: Component
    backend: str

    @property
    def url(self) -> str:
        return self.gateway.url

    @property
    def control(self) -> SandboxControl:
        return SandboxControl(self.sandbox.url)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Fleet]:
    tmp: Path = tmp_path_factory.mktemp(f"flow-{request.param}")
    databases: dict[str, str] = {}
    if request.param == "postgresql":
        for name in SERVICES:
            databases[name] = await create_pg_database()
    ports = {name: free_port() for name in (*SERVICES, "gateway", "sandbox")}
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    env = base_env(
        tmp,
        INTELLIPOST_JWKS_URL=f"{url['user']}/.well-known/jwks.json",
        INTELLIPOST_SANDBOX_PUBLIC_URL=url["sandbox"],
        INTELLIPOST_MERCADOLIBRE_API_BASE_URL=url["sandbox"],
        INTELLIPOST_MERCADOLIBRE_REDIRECT_URI=f"{url['gateway']}/api/v1/mercadolibre/callback",
        INTELLIPOST_MERCADOLIBRE_PICTURE_SOURCE_ORIGINS=url["product"],
        INTELLIPOST_MERCADOLIBRE_RETRY_DELAY_SECONDS="0.05",
        INTELLIPOST_AI_CONTENT_MERCADOLIBRE_URL=url["mercadolibre"],
        INTELLIPOST_PRODUCT_AI_CONTENT_URL=url["ai_content"],
        INTELLIPOST_PRODUCT_MERCADOLIBRE_URL=url["mercadolibre"],
        INTELLIPOST_PRODUCT_PUBLIC_BASE_URL=url["product"],
        **{f"INTELLIPOST_GATEWAY_{name.upper()}_URL": url[name] for name in SERVICES},
        **{f"INTELLIPOST_{n.upper()}_DATABASE_URL": u for n, u in databases.items()},
        **FAST_ARGON2,
    )
    components = {
        name: Component(name, ports[name], env, tmp / f"{name}.log")
        for name in (*SERVICES, "sandbox")
    }
    gateway = Component("gateway", ports["gateway"], env, tmp / "gateway.log")
    try:
        # Independent at startup, so they start together (each takes seconds to import, and
        # longer on a busy machine: hence the generous timeout).
        with ThreadPoolExecutor(len(components)) as pool:
            for started in [
                pool.submit(c.start, wait="/health/ready", timeout=120) for c in components.values()
            ]:
                started.result()
        gateway.start(wait="/health/ready")
        services = {name: c for name, c in components.items() if name != "sandbox"}
        yield Fleet(gateway, services, components["sandbox"], request.param)
    finally:
        gateway.stop()
        # Every process this fixture started, the sandbox included, is stopped here.
        for component in components.values():
            component.stop()
        for database in databases.values():
            await drop_pg_database(database)


@dataclass
class Seller:
    token: str
    email: str

    @property
    def headers(self) -> dict[str, str]:
        return auth(self.token)


def sign_up(fleet: Fleet, *, connect: bool = True) -> Seller:
    email = f"seller-{uuid.uuid4().hex[:10]}@example.com"
    registered = httpx.post(
        f"{fleet.url}/api/v1/auth/register",
        json={"email": email, "password": PASSWORD, "first_name": "Ana", "last_name": "Díaz"},
        timeout=30,
    )
    assert registered.status_code == 201, registered.text
    login = httpx.post(
        f"{fleet.url}/api/v1/auth/login",
        json={"email": email, "password": PASSWORD},
        timeout=30,
    )
    assert login.status_code == 200, login.text
    seller = Seller(login.json()["access_token"], email)
    if connect:
        link = httpx.get(
            f"{fleet.url}/api/v1/mercadolibre/connect", headers=seller.headers, timeout=30
        )
        assert link.status_code == 200, link.text
        callback = approve(link.json()["authorization_url"], nickname="E2E_SELLER")
        assert callback.startswith(f"{fleet.url}/api/v1/mercadolibre/callback")
        connected = httpx.get(callback, timeout=30)
        assert connected.status_code == 200, connected.text
    return seller


def ready_product(fleet: Fleet, seller: Seller, **fields: str) -> dict[str, Any]:
    created = create(fleet.url, seller.token, sample_photos(), price="45999.90", **fields)
    assert created.status_code == 201, created.text
    product = wait_for_status(fleet.url, seller.token, created.json()["id"], leaving="processing")
    assert product["status"] == "ready", product
    return product


def publish(fleet: Fleet, seller: Seller, product_id: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{fleet.url}{API}/{product_id}/publish",
        headers={**seller.headers, "Idempotency-Key": f"publish-{uuid.uuid4()}", **headers},
        timeout=30,
    )


def published(fleet: Fleet, seller: Seller, product_id: str) -> dict[str, Any]:
    return wait_for_status(fleet.url, seller.token, product_id, leaving="publishing", timeout=60)


def test_photos_and_a_prompt_become_a_published_listing(fleet: Fleet) -> None:
    seller = sign_up(fleet)
    correlation_id = f"e2e-flow-{uuid.uuid4().hex[:12]}"
    traced = {
        "X-Correlation-ID": correlation_id,
        "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01",
    }
    created = httpx.post(
        f"{fleet.url}{API}",
        data={"prompt_text": "Zapatillas running Topper Boost Run hombre talle 42 color rojo, "
              "nuevas en caja", "price": "45999.90", "quantity": "2"},
        files=[("images", (n, d, "image/jpeg")) for n, d in sample_photos()],
        headers={**seller.headers, **traced},
        timeout=60,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    assert created.headers["x-correlation-id"] == correlation_id
    product_id = created.json()["id"]
    ready = wait_for_status(fleet.url, seller.token, product_id, leaving="processing")
    assert ready["status"] == "ready"
    content = ready["content"]
    assert content["category"]["id"] == "MLA109027"

    key = f"publish-{uuid.uuid4()}"
    started = publish(fleet, seller, product_id, **{"Idempotency-Key": key}, **traced)
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "publishing"
    done = published(fleet, seller, product_id)
    assert done["status"] == "published", done
    listing = done["listing"]
    assert listing["item_id"].startswith("MLA")
    assert listing["permalink"].startswith(fleet.sandbox.url + "/articulo/MLA-")

    # What MercadoLibre (the sandbox) now shows.
    item = httpx.get(f"{fleet.sandbox.url}/items/{listing['item_id']}", timeout=10).json()
    assert item["title"] == content["title"]
    assert (item["price"], item["currency_id"], item["available_quantity"]) == (45999.9, "ARS", 2)
    assert item["category_id"] == "MLA109027"
    assert len(item["pictures"]) == 3
    assert {"BRAND", "MODEL", "GENDER"} <= {a["id"] for a in item["attributes"]}
    description = httpx.get(f"{fleet.sandbox.url}/items/{listing['item_id']}/description").json()
    assert description["plain_text"] == content["description"]
    assert httpx.get(listing["permalink"], timeout=10).status_code == 200

    # A retried publish request lists nothing twice; a published product stays as it is.
    items_before = fleet.control.calls("POST /items")
    replay = publish(fleet, seller, product_id, **{"Idempotency-Key": key})
    assert replay.status_code == 202
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["status"] == "published"
    assert fleet.control.calls("POST /items") == items_before
    for response in (
        httpx.patch(f"{fleet.url}{API}/{product_id}", json={"quantity": 1}, headers=seller.headers),
        httpx.post(f"{fleet.url}{API}/{product_id}/generate", headers=seller.headers),
        publish(fleet, seller, product_id),
    ):
        assert response.status_code == 409, response.text

    # One correlation id and one trace through the gateway, the product service's background
    # work, the AI content service and the MercadoLibre service (which fetched the pictures
    # back from the product service with the seller's token).
    for name in ("gateway", "product", "ai_content", "mercadolibre"):
        component = fleet.gateway if name == "gateway" else fleet.services[name]
        lines = component.wait_for_log(lambda r: r.get("correlation_id") == correlation_id)
        assert lines, name
        assert {r["trace_id"] for r in lines} == {TRACE_ID}, name
    picture_fetches = fleet.services["product"].wait_for_log(
        lambda r: (
            r.get("correlation_id") == correlation_id
            and r.get("event_type") == "access"
            and r.get("route") == "/api/v1/products/{product_id}/images/{image_id}"
        )
    )
    assert [r["status"] for r in picture_fetches] == [200, 200, 200]


def test_with_the_ai_service_stopped_the_product_fails_and_a_retry_succeeds(fleet: Fleet) -> None:
    seller = sign_up(fleet, connect=False)
    ai_content = fleet.services["ai_content"]
    ai_content.stop()
    try:
        created = create(fleet.url, seller.token, [("a.jpg", jpeg())])
        assert created.status_code == 201, created.text
        failed = wait_for_status(
            fleet.url, seller.token, created.json()["id"], leaving="processing"
        )
    finally:
        ai_content.start(wait="/health/ready")
    assert failed["status"] == "failed"
    assert failed["failure"]["step"] == "generation"
    assert failed["failure"]["reason"].startswith("The AI content service is unavailable")
    assert len(failed["images"]) == 1

    retried = httpx.post(f"{fleet.url}{API}/{failed['id']}/generate", headers=seller.headers)
    assert retried.status_code == 202, retried.text
    done = wait_for_status(fleet.url, seller.token, failed["id"], leaving="processing")
    assert done["status"] == "ready"
    assert done["failure"] is None
    assert done["content"]["title"]


def test_with_the_sandbox_failing_publication_fails_and_a_retry_succeeds(fleet: Fleet) -> None:
    seller = sign_up(fleet)
    product = ready_product(fleet, seller)
    fleet.control.reset()
    fleet.control.faults(error_rate=1.0, error_status=503, retry_after=0)
    try:
        assert publish(fleet, seller, product["id"]).status_code == 202
        failed = published(fleet, seller, product["id"])
    finally:
        fleet.control.reset()
    assert failed["status"] == "failed"
    assert failed["failure"]["step"] == "publishing"
    assert "MercadoLibre" in failed["failure"]["reason"]
    assert failed["listing"] is None
    assert failed["content"] == product["content"]

    assert publish(fleet, seller, product["id"]).status_code == 202
    done = published(fleet, seller, product["id"])
    assert done["status"] == "published", done
    assert done["failure"] is None
    assert fleet.control.calls("POST /items") == 1


def test_a_publication_cut_off_halfway_resumes_without_listing_twice(fleet: Fleet) -> None:
    seller = sign_up(fleet)
    product = ready_product(fleet, seller)
    fleet.control.reset()
    # The pictures go up, then every attempt to create the item fails.
    fleet.control.faults(fail_next=20, fail_status=503, retry_after=0, route="POST /items")
    try:
        assert publish(fleet, seller, product["id"]).status_code == 202
        failed = published(fleet, seller, product["id"])
    finally:
        fleet.control.reset()
    assert failed["status"] == "failed"

    assert publish(fleet, seller, product["id"]).status_code == 202
    done = published(fleet, seller, product["id"])
    assert done["status"] == "published", done
    # The retry resumed the same listing: the pictures were not uploaded a second time.
    assert fleet.control.calls("POST /pictures/items/upload") == 0
    assert fleet.control.calls("POST /items") == 1


def test_a_seller_fixes_what_mercadolibre_refused_and_publishes(fleet: Fleet) -> None:
    seller = sign_up(fleet)
    prompt = "Zapatillas rojas de running, talle 42"
    created = create(fleet.url, seller.token, [("a.jpg", jpeg())], prompt=prompt, price="30000")
    product = wait_for_status(fleet.url, seller.token, created.json()["id"], leaving="processing")
    assert product["status"] == "ready"
    assert publish(fleet, seller, product["id"]).status_code == 202
    refused = published(fleet, seller, product["id"])
    assert refused["status"] == "failed"
    assert "BRAND" in refused["failure"]["reason"]  # a required attribute was missing

    attributes = [
        *product["content"]["attributes"],
        {"id": "BRAND", "value_name": "Topper"},
        {"id": "MODEL", "value_name": "Boost Run"},
        {"id": "GENDER", "value_name": "Hombre"},
    ]
    unique = list({a["id"]: a for a in attributes}.values())
    edited = httpx.patch(
        f"{fleet.url}{API}/{product['id']}", json={"attributes": unique}, headers=seller.headers
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["status"] == "needs_review"
    assert publish(fleet, seller, product["id"]).status_code == 202
    assert published(fleet, seller, product["id"])["status"] == "published"


def test_another_sellers_product_is_404_through_the_gateway(fleet: Fleet) -> None:
    owner, stranger = sign_up(fleet, connect=False), sign_up(fleet, connect=False)
    product = create(fleet.url, owner.token, [("a.jpg", jpeg())]).json()
    base = f"{fleet.url}{API}/{product['id']}"
    image = fleet.url + product["images"][0]["urls"]["original"]
    for response in (
        httpx.get(base, headers=stranger.headers),
        httpx.patch(base, json={"quantity": 5}, headers=stranger.headers),
        httpx.post(f"{base}/generate", headers=stranger.headers),
        httpx.post(f"{base}/publish", headers=stranger.headers),
        httpx.get(image, headers=stranger.headers),
        httpx.delete(base, headers=stranger.headers),
    ):
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert httpx.get(f"{fleet.url}{API}", headers=stranger.headers).json()["items"] == []
    assert httpx.get(base, headers=owner.headers).status_code == 200
    assert httpx.get(image, headers=owner.headers).status_code == 200
    assert httpx.get(base).status_code == 401  # and nobody gets in without a token


def test_the_demo_script_publishes_from_the_sample_photos(fleet: Fleet) -> None:
    from samples.demo import run_demo

    printed: list[str] = []
    result = run_demo(fleet.url, out=printed.append)
    assert result.permalink.startswith(fleet.sandbox.url + "/articulo/")
    assert f"Published: {result.permalink}" in [line.strip() for line in printed]
    assert any(result.correlation_id in line for line in printed)
    lines = fleet.services["product"].wait_for_log(
        lambda r: r.get("correlation_id") == result.correlation_id
    )
    assert any(r.get("message") == "published" for r in lines)
