"""problem+json for every error, with the correlation id and without internals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from io import StringIO

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field

from intellipost.shared.app import create_service_app
from intellipost.shared.config import BaseModuleConfig, module_config
from intellipost.shared.errors import ProblemError
from intellipost.shared.logging import configure_logging


class DemoConfig(BaseModuleConfig):
    model_config = module_config("demo")
    module = "demo"


class Item(BaseModel):
    name: str = Field(min_length=3)
    price: float = Field(gt=0)
    password: str | None = None


router = APIRouter()


@router.post("/items")
async def create_item(item: Item) -> dict[str, str]:
    return {"name": item.name}


@router.get("/conflict")
async def conflict() -> None:
    raise ProblemError(409, "That email is already registered.", slug="email-taken", field="email")


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("db password=hunter2 at /srv/app/secret.py line 3")


@pytest.fixture
async def client(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    config = DemoConfig(var_dir=tmp_path_factory.mktemp("var"))
    app: FastAPI = create_service_app(config, title="demo", routers=[router])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://demo",
    ) as c:
        yield c


async def test_validation_error_lists_every_field_without_echoing_input(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/items",
        json={"name": "x", "price": -1, "password": 12345},
        headers={"X-Correlation-ID": "cid-1"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/validation-error")
    assert problem["status"] == 422
    assert problem["correlation_id"] == "cid-1"
    assert problem["instance"] == "/items"
    fields = {e["field"] for e in problem["errors"]}
    assert {"name", "price", "password"} <= fields
    assert "12345" not in response.text


async def test_malformed_json_is_a_422_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/items", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_problem_error_carries_its_type_and_extra_members(client: httpx.AsyncClient) -> None:
    response = await client.get("/conflict")
    assert response.status_code == 409
    problem = response.json()
    assert problem["type"] == "https://intellipost.dev/problems/email-taken"
    assert problem["detail"] == "That email is already registered."
    assert problem["field"] == "email"


async def test_http_errors_are_problems(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nope")
    assert missing.status_code == 404
    assert missing.json()["title"] == "Not Found"
    wrong_method = await client.delete("/items")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == "application/problem+json"


async def test_unhandled_exception_is_a_500_problem_that_leaks_nothing(
    client: httpx.AsyncClient,
) -> None:
    sink = StringIO()
    configure_logging(service="demo", environment="test", version="1", sink=sink)
    response = await client.get("/boom", headers={"X-Correlation-ID": "cid-boom"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-correlation-id"] == "cid-boom"
    problem = response.json()
    assert problem["correlation_id"] == "cid-boom"
    for leak in ("hunter2", "RuntimeError", "secret.py", "Traceback"):
        assert leak not in response.text
    logged = sink.getvalue()
    assert "RuntimeError" in logged
    assert "hunter2" not in logged
    assert '"status":500' in logged
