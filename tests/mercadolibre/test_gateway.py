"""The issue's "done": connect, predict, publish and read back, all through the gateway."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser

import httpx
import pytest

from tests.mercadolibre.support import API, auth, listing, start_service
from tests.sandbox.support import jpeg_header, png, start_sandbox
from tests.support import Component, TokenIssuer, base_env, free_port


@dataclass
class Fleet:
    gateway: Component
    sandbox: Component
    issuer: TokenIssuer


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("gateway")
    issuer = TokenIssuer().serve()
    sandbox = start_sandbox(tmp)
    gateway_port = free_port()
    started: list[Component] = [sandbox]
    try:
        service = start_service(tmp, sandbox=sandbox, issuer=issuer, callback_port=gateway_port)
        # The registered callback is the gateway's public route, as in production.
        started.append(service)
        env = base_env(
            tmp,
            INTELLIPOST_JWKS_URL=issuer.jwks_url,
            INTELLIPOST_GATEWAY_MERCADOLIBRE_URL=service.url,
        )
        gateway = Component("gateway", gateway_port, env, tmp / "gateway.log").start()
        started.append(gateway)
        yield Fleet(gateway, sandbox, issuer)
    finally:
        for component in reversed(started):
            component.stop()
        issuer.close()


class FormReader(HTMLParser):
    """The approve page's form: its action and the fields a browser would post."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = found.get("action", "")
        elif tag == "input" and "name" in found:
            self.fields[found["name"]] = found.get("value", "")
        elif tag == "option" and "selected" in found:
            self.fields["site_id"] = found.get("value", "")


def test_connect_predict_publish_and_read_back_through_the_gateway(fleet: Fleet) -> None:
    gateway, token = fleet.gateway.url, fleet.issuer.token("u-e2e", ttl=3600)

    # 1. Connect, following the sandbox's approve page like a browser.
    link = httpx.get(f"{gateway}{API}/connect?site=MLA", headers=auth(token), timeout=30)
    assert link.status_code == 200, link.text
    page = httpx.get(link.json()["authorization_url"], timeout=30)
    assert page.status_code == 200
    form = FormReader()
    form.feed(page.text)
    decided = httpx.post(
        f"{fleet.sandbox.url}{form.action}",
        data={**form.fields, "nickname": "E2E_SELLER", "decision": "approve"},
        timeout=30,
    )
    assert decided.status_code == 302
    callback = decided.headers["location"]
    assert callback.startswith(f"{gateway}{API}/callback?")
    connected = httpx.get(callback, timeout=30)  # no bearer: the state says who
    assert connected.status_code == 200, connected.text
    assert connected.json()["nickname"] == "E2E_SELLER"

    # 2. Predict a category.
    predicted = httpx.post(
        f"{gateway}{API}/categories/predict",
        json={"title": "Celular Motorola Moto G84 256GB", "site": "MLA"},
        headers=auth(token),
        timeout=30,
    )
    assert predicted.status_code == 200, predicted.text
    candidate = predicted.json()["candidates"][0]
    assert candidate["category_id"] == "MLA1055"

    # 3. Publish with two pictures and a description.
    body = listing(
        title="Motorola Moto G84 256 GB azul",
        category_id=candidate["category_id"],
        pictures=[
            {"data": base64.b64encode(png(1200, 1200)).decode()},
            {"data": base64.b64encode(jpeg_header(1000, 1000)).decode()},
        ],
        attributes=[
            {"id": "BRAND", "value_id": "2503", "value_name": "Motorola"},
            {"id": "MODEL", "value_name": "Moto G84"},
        ],
    )
    published = httpx.post(
        f"{gateway}{API}/listings",
        json=body,
        headers={**auth(token), "Idempotency-Key": "e2e-1"},
        timeout=60,
    )
    assert published.status_code == 201, published.text
    item_id = published.json()["item_id"]

    # 4. Read it back from the sandbox, and through the service.
    item = httpx.get(f"{fleet.sandbox.url}/items/{item_id}", timeout=30).json()
    assert item["title"] == "Motorola Moto G84 256 GB azul"
    assert len(item["pictures"]) == 2
    description = httpx.get(f"{fleet.sandbox.url}/items/{item_id}/description", timeout=30)
    assert description.json()["plain_text"] == body["description"]
    read = httpx.get(f"{gateway}{API}/listings/{item_id}", headers=auth(token), timeout=30)
    assert read.status_code == 200
    assert read.json()["permalink"] == item["permalink"]


def test_the_gateway_refuses_service_routes_without_a_token(fleet: Fleet) -> None:
    response = httpx.get(f"{fleet.gateway.url}{API}/connection", timeout=30)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
