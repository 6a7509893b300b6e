"""The body-size guard: declared and streamed bodies over the limit get a 413 problem."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request

from intellipost.shared.app import create_service_app
from intellipost.shared.config import BaseModuleConfig, module_config


class LimitConfig(BaseModuleConfig):
    model_config = module_config("limitdemo")
    module = "limitdemo"


received: list[int] = []
router = APIRouter()


@router.post("/upload")
async def upload(request: Request) -> dict[str, int]:
    body = await request.body()
    received.append(len(body))
    return {"bytes": len(body)}


@pytest.fixture
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    received.clear()
    config = LimitConfig(var_dir=tmp_path_factory.mktemp("v"), max_request_body_mb=0.001)
    app: FastAPI = create_service_app(config, title="limits", routers=[router])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def test_a_body_within_the_limit_passes(client: httpx.AsyncClient) -> None:
    response = await client.post("/upload", content=b"x" * 1000)
    assert response.json() == {"bytes": 1000}


async def test_a_declared_oversize_body_is_refused_before_the_app_reads_it(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/upload", content=b"x" * 5000)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/request-too-large")
    assert response.headers["x-correlation-id"]
    assert received == []


async def test_a_streamed_oversize_body_is_cut_off(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 500

    response = await client.post("/upload", content=chunks())
    assert response.status_code == 413
    assert received == []


async def test_a_non_numeric_content_length_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/upload", content=b"abc", headers={"content-length": "three"})
    assert response.status_code == 400
