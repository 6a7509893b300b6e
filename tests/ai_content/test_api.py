"""The content API as a real process: shapes, ownership, versions, and clear 4xx answers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import REPO, Component, TokenIssuer, base_env, free_port

API = "/api/v1/content"
NIKE: dict[str, Any] = {
    "product_id": "prod-nike",
    "prompt": "Zapatillas Nike Air Max 90 blancas talle 42, nuevas",
    "images": [
        {"id": "img-1", "width": 1200, "height": 1200, "format": "jpeg"},
        {
            "id": "img-2",
            "width": 1200,
            "height": 900,
            "format": "png",
            "dominant_colors": ["white", "#f2f2f2"],
        },
    ],
    "site": "MLA",
}


@pytest.fixture(scope="module")
def issuer() -> Iterator[TokenIssuer]:
    issuer = TokenIssuer().serve()
    try:
        yield issuer
    finally:
        issuer.close()


def start(tmp: Path, issuer: TokenIssuer, **env: str) -> Component:
    settings = {
        "INTELLIPOST_JWKS_URL": issuer.jwks_url,
        # Nothing listens there: categories come from the built-in map, at once.
        "INTELLIPOST_AI_CONTENT_MERCADOLIBRE_URL": f"http://127.0.0.1:{free_port()}",
        **env,
    }
    component = Component("ai_content", free_port(), base_env(tmp, **settings), tmp / "ai.log")
    return component.start(wait="/health/ready")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, issuer: TokenIssuer) -> Iterator[Component]:
    component = start(tmp_path_factory.mktemp("ai_content"), issuer)
    try:
        yield component
    finally:
        component.stop()


class Client:
    def __init__(self, service: Component, issuer: TokenIssuer, user: str) -> None:
        self.base = service.url + API
        self.headers = {"Authorization": f"Bearer {issuer.token(user, ttl=3600)}"}

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return httpx.post(self.base + path, headers=headers, timeout=30, **kwargs)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, headers=self.headers, timeout=30)


@pytest.fixture(scope="module")
def seller(service: Component, issuer: TokenIssuer) -> Client:
    return Client(service, issuer, "seller-api-1")


@pytest.fixture(scope="module")
def stranger(service: Component, issuer: TokenIssuer) -> Client:
    return Client(service, issuer, "seller-api-2")


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["detail"]
    assert body["correlation_id"]
    return body


def test_generate_returns_a_stored_version_in_the_issue_shape(seller: Client) -> None:
    response = seller.post("/generate", json={**NIKE, "product_id": "prod-shape"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) >= {
        "id", "product_id", "version", "title", "description", "category", "attributes",
        "quality", "needs_review", "provider", "model", "language", "created_at", "cached",
    }  # fmt: skip
    assert body["product_id"] == "prod-shape"
    assert body["version"] == 1
    assert body["title"] == "Zapatillas Nike Air Max 90 Blancas Talle 42"
    assert body["category"] == {"id": "MLA109027", "name": "Zapatillas", "confidence": 0.6}
    assert {"id": "BRAND", "value_name": "Nike"} in body["attributes"]
    assert body["quality"]["passed"] is True
    assert body["quality"]["score"] == 1.0
    assert [c["name"] for c in body["quality"]["checks"]] == [
        "title_length",
        "title_not_all_caps",
        "no_banned_words",
        "no_contact_data",
        "description_length",
        "required_attributes",
        "language",
    ]
    assert body["needs_review"] is False
    assert (body["provider"], body["model"], body["language"]) == ("local", "rules-v1", "es")
    assert body["cached"] is False
    assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")
    assert "Mirá las 2 fotos" in body["description"]


def test_the_same_request_again_is_the_cached_version(seller: Client) -> None:
    first = seller.post("/generate", json={**NIKE, "product_id": "prod-again"})
    again = seller.post("/generate", json={**NIKE, "product_id": "prod-again"})
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["cached"] is True
    assert again.json()["id"] == first.json()["id"]


def test_versions_are_listed_newest_first_and_only_to_their_owner(
    seller: Client, stranger: Client
) -> None:
    created = seller.post("/generate", json={**NIKE, "product_id": "prod-list"}).json()
    edited = seller.post(f"/{created['id']}/validate", json={"title": "Zapatillas Nike Air Max 90"})
    assert edited.status_code == 201
    listed = seller.get("/products/prod-list/versions")
    assert listed.status_code == 200
    assert listed.json()["product_id"] == "prod-list"
    assert [v["version"] for v in listed.json()["versions"]] == [2, 1]
    assert stranger.get("/products/prod-list/versions").json()["versions"] == []
    assert seller.get(f"/{created['id']}").json() == listed.json()["versions"][1]
    assert_problem(stranger.get(f"/{created['id']}"), 404)
    assert_problem(stranger.post(f"/{created['id']}/validate", json={"title": "Mío"}), 404)


def test_validate_stores_an_edit_as_a_new_version_with_its_quality(seller: Client) -> None:
    created = seller.post("/generate", json={**NIKE, "product_id": "prod-edit"}).json()
    response = seller.post(
        f"/{created['id']}/validate",
        json={
            "description": created["description"] + "\nConsultas al 11 5555-5555 o por WhatsApp.",
            "attributes": [*created["attributes"], {"id": "gender", "value_name": "Hombre"}],
        },
    )
    assert response.status_code == 201, response.text
    edited = response.json()
    assert edited["version"] == 2
    assert edited["parent_id"] == created["id"]
    assert edited["provider"] == "manual"
    assert edited["title"] == created["title"]
    assert {"id": "GENDER", "value_name": "Hombre"} in edited["attributes"]
    assert edited["needs_review"] is True
    failed = {c["name"]: c["detail"] for c in edited["quality"]["checks"] if not c["passed"]}
    assert failed == {
        "no_contact_data": "description has messaging or social network, phone number"
    }
    # The original is untouched and still there.
    assert seller.get(f"/{created['id']}").json()["description"] == created["description"]


def test_validate_without_edits_rechecks_and_stores_nothing(seller: Client) -> None:
    created = seller.post("/generate", json={**NIKE, "product_id": "prod-recheck"}).json()
    response = seller.post(f"/{created['id']}/validate")
    assert response.status_code == 200
    assert response.json()["id"] == created["id"]
    assert response.json()["quality"]["passed"] is True
    assert len(seller.get("/products/prod-recheck/versions").json()["versions"]) == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"prompt": "Nike 42"}, "prompt"),
        ({"prompt": "Zapatillas " * 60}, "prompt"),
        ({"site": "MLX"}, "site"),
        ({"language": "fr"}, "language"),
        ({"category_hint": "MLB23332"}, ""),
        ({"images": [{"id": "img-1", "width": 0, "height": 10, "format": "jpeg"}]}, "images"),
        (
            {
                "images": [
                    {"id": "i", "width": 10, "height": 10, "format": "jpeg", "url": "ftp://x"}
                ]
            },
            "images",
        ),
        ({"product_id": "../other"}, "product_id"),
        ({"product_id": None}, "product_id"),
    ],
)
def test_bad_input_is_a_422_problem_and_stores_nothing(
    seller: Client, changes: dict[str, Any], field: str
) -> None:
    body = {**NIKE, "product_id": "prod-bad", **changes}
    problem = assert_problem(seller.post("/generate", json=body), 422)
    assert problem["type"] == "https://intellipost.dev/problems/validation-error"
    assert any(e["field"].startswith(field) for e in problem["errors"])
    assert seller.get("/products/prod-bad/versions").json()["versions"] == []


def test_a_body_that_is_not_json_is_a_422(seller: Client) -> None:
    response = seller.post(
        "/generate", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_problem(response, 422)


def test_bad_edits_are_4xx_problems(seller: Client) -> None:
    created = seller.post("/generate", json={**NIKE, "product_id": "prod-bad-edit"}).json()
    repeated = [{"id": "BRAND", "value_name": "Nike"}, {"id": "BRAND", "value_name": "Adidas"}]
    assert_problem(seller.post(f"/{created['id']}/validate", json={"attributes": repeated}), 422)
    assert_problem(seller.post(f"/{created['id']}/validate", json={"title": ""}), 422)
    assert_problem(seller.post(f"/{created['id']}/validate", json={"category_id": "MLB1055"}), 422)
    assert_problem(seller.post(f"/{created['id']}/validate", json={"category_id": "zapatos"}), 422)
    assert_problem(seller.post("/not-a-uuid/validate", json={}), 422)
    assert_problem(seller.get("/6f1c1d9e-4c1e-4f51-9a51-3d0f3b0f0a11"), 404)
    assert len(seller.get("/products/prod-bad-edit/versions").json()["versions"]) == 1


def test_every_route_needs_a_valid_token(service: Component) -> None:
    for method, path in [
        ("POST", "/generate"),
        ("GET", "/products/prod-nike/versions"),
        ("GET", "/6f1c1d9e-4c1e-4f51-9a51-3d0f3b0f0a11"),
        ("POST", "/6f1c1d9e-4c1e-4f51-9a51-3d0f3b0f0a11/validate"),
    ]:
        response = httpx.request(method, service.url + API + path, json=NIKE, timeout=10)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
        forged = httpx.request(
            method,
            service.url + API + path,
            json=NIKE,
            headers={"Authorization": "Bearer eyJhbGciOiJub25lIn0.e30."},
            timeout=10,
        )
        assert_problem(forged, 401)


def test_versions_live_in_postgresql(tmp_path: Path, issuer: TokenIssuer, pg_url: str) -> None:
    component = start(tmp_path, issuer, INTELLIPOST_AI_CONTENT_DATABASE_URL=pg_url)
    try:
        client = Client(component, issuer, "seller-pg")
        created = client.post("/generate", json={**NIKE, "site": "MLB", "language": None})
        assert created.status_code == 201, created.text
        assert created.json()["title"] == "Tênis Nike Air Max 90 Branco Tamanho 42"
        assert created.json()["language"] == "pt"
        edited = client.post(
            f"/{created.json()['id']}/validate", json={"title": "Tênis Nike Air Max 90 Branco"}
        )
        assert edited.status_code == 201
        versions = client.get("/products/prod-nike/versions").json()["versions"]
        assert [v["title"] for v in versions] == [
            "Tênis Nike Air Max 90 Branco",
            "Tênis Nike Air Max 90 Branco Tamanho 42",
        ]
        ready = httpx.get(component.url + "/health/ready", timeout=10).json()
        assert ready["checks"]["database"]["detail"] == "postgresql"
    finally:
        component.stop()


def test_production_refuses_a_selected_provider_without_its_key(tmp_path: Path) -> None:
    env = base_env(
        tmp_path,
        INTELLIPOST_ENVIRONMENT="production",
        INTELLIPOST_AI_CONTENT_PRIMARY_PROVIDER="local",
        INTELLIPOST_AI_CONTENT_FALLBACK_PROVIDER="openai",
    )
    result = subprocess.run(
        [sys.executable, "-m", "intellipost.ai_content", "migrate"],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.decode().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr.decode()
    assert "refusing to start" in lines[0]
    assert "INTELLIPOST_AI_CONTENT_OPENAI_API_KEY" in lines[0]
