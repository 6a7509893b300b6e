"""The issue's "done when", as real processes: curl through the gateway with a token, the
category predicted by the MercadoLibre service (against its sandbox), and the same call
served by an OpenAI-compatible endpoint; two replicas sharing PostgreSQL and Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.ai_content.fakes import ModelServer, Reply
from tests.mercadolibre.support import start_service
from tests.sandbox.support import start_sandbox
from tests.support import (
    REDIS_URL,
    Component,
    TokenIssuer,
    base_env,
    create_pg_database,
    drop_pg_database,
    free_port,
    redis_available,
    unavailable,
)

PROMPT = "Zapatillas Nike Air Max 90 blancas talle 42, nuevas"
PROVIDER_KEY = "sk-e2e-provider-key"


@dataclass
class Fleet:
    issuer: TokenIssuer
    model: ModelServer
    gateway: Component  # in front of the embedded provider
    gateway_llm: Component  # in front of replica A of the OpenAI-configured service
    replica_b: Component
    token: str

    def generate(self, base: str, **changes: Any) -> httpx.Response:
        body = {
            "product_id": f"prod-{uuid.uuid4().hex[:8]}",
            "prompt": PROMPT,
            "images": [{"id": "img-1", "width": 1200, "height": 1200, "format": "jpeg"}],
            "site": "MLA",
            **changes,
        }
        return httpx.post(
            f"{base}/api/v1/content/generate",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60,
        )


@pytest.fixture(scope="module")
async def fleet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fleet]:
    if not await redis_available():
        unavailable(f"Redis at {REDIS_URL}")
    tmp = tmp_path_factory.mktemp("content-fleet")
    for name in ("sandbox", "ml"):
        (tmp / name).mkdir()
    pg_url = await create_pg_database()
    issuer = TokenIssuer().serve()
    model = ModelServer().serve()
    started: list[Component] = []

    def start(component: Component, wait: str = "/health/ready") -> Component:
        component.start(wait=wait)
        started.append(component)
        return component

    def ai_content(name: str, **env: str) -> Component:
        settings = {"INTELLIPOST_JWKS_URL": issuer.jwks_url, **env}
        return Component(
            "ai_content", free_port(), base_env(tmp / name, **settings), tmp / f"{name}.log"
        )

    def gateway(name: str, upstream: Component) -> Component:
        env = base_env(
            tmp / name,
            INTELLIPOST_JWKS_URL=issuer.jwks_url,
            INTELLIPOST_GATEWAY_AI_CONTENT_URL=upstream.url,
        )
        return Component("gateway", free_port(), env, tmp / f"{name}.log")

    try:
        sandbox = start_sandbox(tmp / "sandbox")
        started.append(sandbox)
        mercadolibre = start_service(tmp / "ml", sandbox=sandbox, issuer=issuer)
        started.append(mercadolibre)
        local = start(
            ai_content("ai-local", INTELLIPOST_AI_CONTENT_MERCADOLIBRE_URL=mercadolibre.url)
        )
        llm_env = {
            "INTELLIPOST_AI_CONTENT_MERCADOLIBRE_URL": mercadolibre.url,
            "INTELLIPOST_AI_CONTENT_PRIMARY_PROVIDER": "openai",
            "INTELLIPOST_AI_CONTENT_FALLBACK_PROVIDER": "local",
            "INTELLIPOST_AI_CONTENT_OPENAI_BASE_URL": model.openai_url,
            "INTELLIPOST_AI_CONTENT_OPENAI_API_KEY": PROVIDER_KEY,
            "INTELLIPOST_AI_CONTENT_REQUEST_TIMEOUT_SECONDS": "3",
            "INTELLIPOST_AI_CONTENT_DATABASE_URL": pg_url,
            "INTELLIPOST_REDIS_URL": REDIS_URL,
            "INTELLIPOST_AI_CONTENT_REDIS_KEY_PREFIX": f"intellipost-test:{uuid.uuid4().hex[:10]}:",
        }
        replica_a = start(ai_content("ai-llm-a", **llm_env))
        replica_b = start(ai_content("ai-llm-b", **llm_env))
        # The gateway is ready only when every upstream is; these tests need one of them.
        gateway_local = start(gateway("gateway-local", local), wait="/health/live")
        gateway_llm = start(gateway("gateway-llm", replica_a), wait="/health/live")
        yield Fleet(
            issuer,
            model,
            gateway_local,
            gateway_llm,
            replica_b,
            issuer.token("seller-e2e", ttl=3600),
        )
    finally:
        for component in reversed(started):
            component.stop()
        model.close()
        issuer.close()
        await drop_pg_database(pg_url)


def test_curl_through_the_gateway_turns_the_prompt_into_a_listing(fleet: Fleet) -> None:
    response = fleet.generate(fleet.gateway.url)
    assert response.status_code == 201, response.text
    assert response.headers["x-correlation-id"]
    body = response.json()
    assert body["title"] == "Zapatillas Nike Air Max 90 Blancas Talle 42"
    assert body["description"].startswith("Zapatillas Nike Air Max 90 en color blanco, talle 42.")
    # Predicted by the MercadoLibre service from the sandbox's domain discovery.
    assert body["category"] == {"id": "MLA109027", "name": "Zapatillas", "confidence": 0.8}
    attributes = {a["id"]: a["value_name"] for a in body["attributes"]}
    assert attributes == {
        "BRAND": "Nike",
        "MODEL": "Air Max 90",
        "COLOR": "Blanco",
        "SIZE": "42",
        "ITEM_CONDITION": "Nuevo",
    }
    assert body["quality"]["passed"] is True
    assert body["needs_review"] is False
    # The category also requires GENDER, which the prompt does not say: reported, not made up.
    failed = {c["name"]: c["detail"] for c in body["quality"]["checks"] if not c["passed"]}
    assert failed == {"required_attributes": "missing GENDER"}
    assert body["provider"] == "local"

    versions = httpx.get(
        f"{fleet.gateway.url}/api/v1/content/products/{body['product_id']}/versions",
        headers={"Authorization": f"Bearer {fleet.token}"},
        timeout=30,
    )
    assert [v["id"] for v in versions.json()["versions"]] == [body["id"]]


def test_the_gateway_turns_away_a_call_without_a_token(fleet: Fleet) -> None:
    response = httpx.post(
        f"{fleet.gateway.url}/api/v1/content/generate", json={"prompt": PROMPT}, timeout=30
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_the_same_call_with_an_openai_compatible_endpoint_uses_it(fleet: Fleet) -> None:
    before = len(fleet.model.calls("openai"))
    response = fleet.generate(fleet.gateway_llm.url)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["provider"], body["model"]) == ("openai", "gpt-4o-mini")
    assert body["quality"]["passed"] is True
    assert body["category"]["id"] == "MLA109027"
    [call] = fleet.model.calls("openai")[before:]
    assert call.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert fleet.token not in str(call.headers)
    assert "Zapatillas (MLA109027)" in call.body["messages"][1]["content"]


def test_replicas_share_versions_and_the_cache(fleet: Fleet) -> None:
    prompt = "Zapatillas Adidas Superstar negras talle 40, nuevas"
    first = fleet.generate(fleet.gateway_llm.url, product_id="prod-shared", prompt=prompt)
    assert first.status_code == 201, first.text
    calls = len(fleet.model.calls("openai"))
    again = fleet.generate(fleet.replica_b.url, product_id="prod-shared", prompt=prompt)
    assert again.status_code == 200, again.text
    assert again.json()["cached"] is True
    assert again.json()["id"] == first.json()["id"]
    assert len(fleet.model.calls("openai")) == calls


def test_a_model_that_times_out_falls_back_to_the_embedded_provider(fleet: Fleet) -> None:
    fleet.model.script(Reply(delay=6.0))
    response = fleet.generate(
        fleet.gateway_llm.url, prompt="Celular Samsung Galaxy S23 128GB negro, nuevo"
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["provider"] == "local"
    assert body["title"] == "Celular Samsung Galaxy S23 128 GB Negro"
    assert body["quality"]["passed"] is True
