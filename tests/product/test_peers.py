"""What the product service sends its peers, seen by a recording server in their place."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.product.support import create, jpeg, sample_photos, wait_for_status
from tests.support import Component, EchoServer, TokenIssuer, base_env, free_port

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture(scope="module")
def recorded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Component, EchoServer, TokenIssuer]]:
    tmp: Path = tmp_path_factory.mktemp("peers")
    issuer = TokenIssuer().serve()
    echo = EchoServer().serve()
    env = base_env(
        tmp,
        INTELLIPOST_JWKS_URL=issuer.jwks_url,
        INTELLIPOST_PRODUCT_AI_CONTENT_URL=echo.url,
        INTELLIPOST_PRODUCT_MERCADOLIBRE_URL=echo.url,
    )
    product = Component("product", free_port(), env, tmp / "product.log")
    try:
        product.start(wait="/health/ready")
        yield product, echo, issuer
    finally:
        product.stop()
        echo.close()
        issuer.close()


def test_generation_carries_the_sellers_token_correlation_id_trace_and_photos(
    recorded: tuple[Component, EchoServer, TokenIssuer],
) -> None:
    product, echo, issuer = recorded
    token = issuer.token("peer-seller")
    correlation_id = f"peer-{uuid.uuid4().hex[:8]}"
    response = create(
        product.url,
        token,
        sample_photos(),
        correlation_id=correlation_id,
        traceparent=None,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    # The recording server's echo is not a content version: a peer answering nonsense.
    failed = wait_for_status(product.url, token, created["id"], leaving="processing")
    assert failed["status"] == "failed"
    assert failed["failure"]["reason"] == (
        "The AI content service gave an answer of an unexpected shape."
    )

    (call,) = [r for r in echo.requests if r["headers"].get("x-correlation-id") == correlation_id]
    assert (call["method"], call["path"]) == ("POST", "/api/v1/content/generate")
    assert call["headers"]["authorization"] == f"Bearer {token}"
    assert call["headers"]["traceparent"].startswith("00-")
    body = json.loads(call["body"])
    assert body["product_id"] == created["id"]
    assert body["prompt"] == created["prompt"]
    assert body["site"] == "MLA"
    assert [image["id"] for image in body["images"]] == [i["id"] for i in created["images"]]
    first = body["images"][0]
    assert (first["width"], first["height"], first["format"]) == (1200, 1200, "jpeg")
    assert "red" in first["dominant_colors"]
    assert first["url"].startswith("data:image/jpeg;base64,/9j/")


def test_a_trace_started_by_the_client_continues_into_the_background_call(
    recorded: tuple[Component, EchoServer, TokenIssuer],
) -> None:
    product, echo, issuer = recorded
    token = issuer.token("peer-seller")
    correlation_id = f"peer-{uuid.uuid4().hex[:8]}"
    response = create(
        product.url,
        token,
        [("a.jpg", jpeg())],
        correlation_id=correlation_id,
        traceparent=f"00-{TRACE_ID}-b7ad6b7169203331-01",
    )
    assert response.status_code == 201
    wait_for_status(product.url, token, response.json()["id"], leaving="processing")
    (call,) = [r for r in echo.requests if r["headers"].get("x-correlation-id") == correlation_id]
    assert call["headers"]["traceparent"].split("-")[1] == TRACE_ID
