"""The service-to-service HTTP client: one pooled httpx client per process."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import Any

import httpx

from intellipost.shared.context import authorization_var, correlation_id_var
from intellipost.shared.logging import get_structured_logger
from intellipost.shared.telemetry import instrument_httpx

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Errors raised before the request reached the peer's application: safe to send again.
RETRYABLE_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

log = get_structured_logger("shared.http")


class ServiceClient:
    """Calls another component on behalf of the current request.

    Every call carries the request's correlation id and, unless told otherwise, the
    caller's ``Authorization`` header; the httpx instrumentation adds a client span and
    injects ``traceparent``/``tracestate``/``baggage``. Only idempotent requests (by method,
    or a POST with an ``Idempotency-Key``) are retried, and only on connection errors, with
    exponential backoff and jitter.
    """

    def __init__(
        self,
        *,
        timeout_seconds: float = 10.0,
        connect_timeout_seconds: float = 3.0,
        max_retries: int = 2,
        backoff_seconds: float = 0.1,
        max_connections: int = 100,
        user_agent: str = "intellipost",
    ) -> None:
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds, connect=connect_timeout_seconds),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"user-agent": user_agent},
            follow_redirects=False,
        )
        instrument_httpx(self._client)

    @property
    def raw(self) -> httpx.AsyncClient:
        """The underlying client, for streaming and other uses the helpers don't cover."""
        return self._client

    async def aclose(self) -> None:
        await self._client.aclose()

    def _headers(self, headers: Mapping[str, str] | None, forward_auth: bool) -> dict[str, str]:
        out = dict(headers or {})
        lowered = {k.lower() for k in out}
        correlation_id = correlation_id_var.get()
        if correlation_id and "x-correlation-id" not in lowered:
            out["X-Correlation-ID"] = correlation_id
        authorization = authorization_var.get()
        if forward_auth and authorization and "authorization" not in lowered:
            out["Authorization"] = authorization
        return out

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        forward_auth: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        method = method.upper()
        sent_headers = self._headers(headers, forward_auth)
        retryable = method in IDEMPOTENT_METHODS or any(
            k.lower() == "idempotency-key" for k in sent_headers
        )
        attempt = 0
        while True:
            try:
                return await self._client.request(method, url, headers=sent_headers, **kwargs)
            except RETRYABLE_ERRORS as exc:
                if not retryable or attempt >= self.max_retries:
                    raise
                delay = self.backoff_seconds * (2**attempt) * (0.5 + random.random())
                attempt += 1
                log.warning(
                    "retrying after connection error",
                    url=url,
                    method=method,
                    attempt=attempt,
                    delay_ms=round(delay * 1000, 1),
                    error=type(exc).__name__,
                )
                await asyncio.sleep(delay)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", url, **kwargs)


_client: ServiceClient | None = None


def get_service_client() -> ServiceClient:
    """The process's one client (made on first use, closed by the app's lifespan)."""
    global _client
    if _client is None:
        _client = ServiceClient()
    return _client


async def close_service_client() -> None:
    global _client
    if _client is not None:
        await _client.aclose()
        _client = None
