"""Work in flight when the product service dies or stops: nothing is stranded or lost."""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.product.support import API, auth, create, jpeg, wait_for_status
from tests.support import (
    Component,
    TokenIssuer,
    base_env,
    create_pg_database,
    drop_pg_database,
    free_port,
)


class Blackhole:
    """A peer that accepts connections and never answers: an AI service that hangs."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._held: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            self._held.append(connection)

    def close(self) -> None:
        self._closed = True
        self._server.close()
        for connection in self._held:
            connection.close()


@dataclass
class Rig:
    product: Component
    ai_content: Component
    blackhole: Blackhole
    issuer: TokenIssuer

    def restart_product(self, *, ai_url: str) -> None:
        self.product.env["INTELLIPOST_PRODUCT_AI_CONTENT_URL"] = ai_url
        self.product.start(wait="/health/ready")


@pytest.fixture(scope="module")
def blackhole() -> Iterator[Blackhole]:
    hole = Blackhole()
    try:
        yield hole
    finally:
        hole.close()


@pytest.fixture(scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory, blackhole: Blackhole) -> AsyncIterator[Rig]:
    tmp: Path = tmp_path_factory.mktemp("recovery")
    pg_url = await create_pg_database()
    issuer = TokenIssuer().serve()
    env = base_env(
        tmp,
        INTELLIPOST_JWKS_URL=issuer.jwks_url,
        INTELLIPOST_AI_CONTENT_MERCADOLIBRE_URL=f"http://127.0.0.1:{free_port()}",
        INTELLIPOST_PRODUCT_DATABASE_URL=pg_url,
        INTELLIPOST_PRODUCT_AI_CONTENT_URL=blackhole.url,
        INTELLIPOST_PRODUCT_AI_TIMEOUT_SECONDS="300",
        INTELLIPOST_PRODUCT_TASK_LEASE_SECONDS="1",
        INTELLIPOST_PRODUCT_GRACEFUL_TIMEOUT_SECONDS="2",
    )
    ai_content = Component("ai_content", free_port(), env, tmp / "ai_content.log")
    product = Component("product", free_port(), env, tmp / "product.log")
    try:
        ai_content.start(wait="/health/ready")
        product.start(wait="/health/ready")
        yield Rig(product, ai_content, blackhole, issuer)
    finally:
        product.stop()
        ai_content.stop()
        issuer.close()
        await drop_pg_database(pg_url)


def processing_product(rig: Rig, token: str) -> dict[str, object]:
    response = create(rig.product.url, token, [("a.jpg", jpeg())], price="100")
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    assert body["status"] == "processing"
    return body


def test_while_processing_edits_publishing_and_regenerating_answer_409(rig: Rig) -> None:
    token = rig.issuer.token("seller-busy")
    product = processing_product(rig, token)
    base = f"{rig.product.url}{API}/{product['id']}"
    for response in (
        httpx.patch(base, json={"price": "120"}, headers=auth(token)),
        httpx.post(f"{base}/publish", headers=auth(token)),
        httpx.post(f"{base}/generate", headers=auth(token)),
    ):
        assert response.status_code == 409, response.text
        assert response.json()["product_status"] == "processing"
    still = httpx.get(base, headers=auth(token)).json()
    assert (still["status"], still["price"]) == ("processing", "100.00")


def test_a_product_a_killed_process_left_in_processing_fails_and_can_be_retried(rig: Rig) -> None:
    token = rig.issuer.token("seller-kill")
    product = processing_product(rig, token)

    rig.product.signal(signal.SIGKILL)
    assert rig.product.proc is not None
    rig.product.proc.wait(timeout=10)
    rig.restart_product(ai_url=rig.ai_content.url)

    failed = wait_for_status(
        rig.product.url, token, str(product["id"]), leaving="processing", timeout=15
    )
    assert failed["status"] == "failed"
    assert failed["failure"] == {
        "step": "generation",
        "reason": "Interrupted by a restart of the product service; retry.",
    }
    assert len(failed["images"]) == 1  # nothing lost

    retry = httpx.post(f"{rig.product.url}{API}/{product['id']}/generate", headers=auth(token))
    assert retry.status_code == 202
    done = wait_for_status(rig.product.url, token, str(product["id"]), leaving="processing")
    assert done["status"] == "ready"
    assert done["failure"] is None


def test_a_graceful_stop_fails_work_in_flight_at_once_with_a_reason(rig: Rig) -> None:
    rig.product.stop()
    rig.restart_product(ai_url=rig.blackhole.url)
    token = rig.issuer.token("seller-stop")
    product = processing_product(rig, token)

    # Stopped by SIGTERM within its graceful period (uvicorn re-raises the signal), not killed.
    assert rig.product.stop() in (0, -signal.SIGTERM)
    stopped = rig.product.log_records()
    assert any(
        r.get("message") == "work interrupted by shutdown" and r.get("product_id") == product["id"]
        for r in stopped
    )
    rig.restart_product(ai_url=rig.ai_content.url)
    failed = httpx.get(f"{rig.product.url}{API}/{product['id']}", headers=auth(token)).json()
    assert failed["status"] == "failed"
    assert failed["failure"]["reason"] == "Interrupted by a shutdown of the product service; retry."
