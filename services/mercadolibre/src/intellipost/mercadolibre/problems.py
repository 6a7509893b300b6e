"""How failures of MercadoLibre (and of the shared budget) reach the caller: problem+json."""

from __future__ import annotations

import math

from fastapi import FastAPI, Request
from redis.exceptions import RedisError
from starlette.responses import Response

from intellipost.mercadolibre.client import MercadoLibreError, MercadoLibreUnavailableError
from intellipost.mercadolibre.locks import LockTimeoutError
from intellipost.mercadolibre.ratelimit import LimiterUnavailableError, RateLimitedError
from intellipost.shared.errors import problem_response, problem_type
from intellipost.shared.logging import get_structured_logger

log = get_structured_logger("mercadolibre")


def _seconds(value: float) -> str:
    return str(max(1, math.ceil(value)))


async def _on_refusal(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MercadoLibreError)
    path = request.url.path
    if exc.status == 400:
        # The seller fixes what MercadoLibre names: its `cause` list is passed on unchanged.
        reasons = "; ".join(
            str(c.get("message"))
            for c in exc.causes[:3]
            if isinstance(c, dict) and c.get("message")
        )
        return problem_response(
            422,
            title="MercadoLibre rejected the request",
            detail=f"{exc.message}: {reasons}" if reasons else exc.message,
            type_=problem_type("mercadolibre-validation"),
            instance=path,
            mercadolibre_error=exc.error,
            cause=exc.causes,
        )
    if exc.status == 401:
        return problem_response(
            409,
            title="MercadoLibre reconnection required",
            detail="MercadoLibre no longer accepts this account's authorization; connect again.",
            type_=problem_type("mercadolibre-reconnect-required"),
            instance=path,
        )
    if exc.status in (403, 404):
        return problem_response(
            exc.status,
            detail=f"MercadoLibre: {exc.message}",
            type_=problem_type("mercadolibre-forbidden" if exc.status == 403 else "not-found"),
            instance=path,
            mercadolibre_error=exc.error,
        )
    log.error("unexpected MercadoLibre answer", status=exc.status, error=exc.error, path=path)
    return problem_response(
        502,
        title="Bad Gateway",
        detail=f"MercadoLibre answered {exc.status} ({exc.error}).",
        type_=problem_type("mercadolibre-error"),
        instance=path,
    )


async def _on_budget(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RateLimitedError)
    return problem_response(
        429,
        title="Too Many Requests",
        detail="The MercadoLibre call budget is exhausted for now; retry later.",
        type_=problem_type("mercadolibre-rate-limited"),
        instance=request.url.path,
        headers={"Retry-After": _seconds(exc.retry_after)},
    )


async def _on_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MercadoLibreUnavailableError)
    return problem_response(
        503,
        title="Service Unavailable",
        detail=f"MercadoLibre is not answering ({exc.reason}); retry later.",
        type_=problem_type("mercadolibre-unavailable"),
        instance=request.url.path,
        headers={"Retry-After": _seconds(exc.retry_after)},
    )


async def _on_busy(request: Request, exc: Exception) -> Response:
    # A shared dependency (Redis) is down, or another replica holds a lock too long.
    log.warning("dependency unavailable", error=type(exc).__name__, path=request.url.path)
    return problem_response(
        503,
        title="Service Unavailable",
        detail="A shared dependency is busy or unavailable; retry shortly.",
        type_=problem_type("dependency-unavailable"),
        instance=request.url.path,
        headers={"Retry-After": "2"},
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(MercadoLibreError, _on_refusal)
    app.add_exception_handler(RateLimitedError, _on_budget)
    app.add_exception_handler(MercadoLibreUnavailableError, _on_unavailable)
    for busy in (LimiterUnavailableError, LockTimeoutError, RedisError):
        app.add_exception_handler(busy, _on_busy)
