"""Calls to the AI content and MercadoLibre services, on behalf of the seller.

Every call goes through the shared client, which adds the request's correlation id, the
seller's ``Authorization`` and the trace context (also inside background work, whose
context is copied from the request that started it).
"""

from __future__ import annotations

from typing import Any

import httpx

from intellipost.shared.http import get_service_client

# Longest part of a peer's explanation kept in a product's failure reason.
_MAX_DETAIL = 600


class PeerError(Exception):
    """A peer was unreachable, too slow or failed; ``reason`` is for the seller to read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PeerRefusalError(PeerError):
    """The peer understood the request and refused it (a 4xx); ``problem`` is its answer."""

    def __init__(self, reason: str, status: int, problem: dict[str, Any]) -> None:
        super().__init__(reason)
        self.status = status
        self.problem = problem

    @property
    def slug(self) -> str:
        kind = str(self.problem.get("type", ""))
        return kind.rsplit("/", 1)[-1]


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class Peer:
    def __init__(self, name: str, base_url: str, timeout_seconds: float) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds

    async def call(
        self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """The status and JSON body of a 2xx answer; PeerError for anything else."""
        try:
            response = await get_service_client().request(
                method,
                self.base_url + path,
                json=json,
                headers=headers,
                timeout=self.timeout_seconds,
            )
        except httpx.TimeoutException as exc:
            raise PeerError(
                f"The {self.name} did not answer within {self.timeout_seconds:g} s."
            ) from exc
        except httpx.HTTPError as exc:
            raise PeerError(f"The {self.name} is unavailable ({type(exc).__name__}).") from exc
        body = _problem(response)
        if response.is_success:
            if not body:
                raise PeerError(f"The {self.name} gave an answer that is not JSON.")
            return response.status_code, body
        detail = str(body.get("detail") or response.reason_phrase or "no detail")[:_MAX_DETAIL]
        if 400 <= response.status_code < 500:
            raise PeerRefusalError(
                f"The {self.name} refused the request: {detail}", response.status_code, body
            )
        raise PeerError(
            f"The {self.name} failed ({response.status_code}): {detail}"
            if body
            else f"The {self.name} is unavailable ({response.status_code})."
        )


class AiContentClient:
    """``/api/v1/content``: generation, and re-validation of the seller's edits."""

    def __init__(self, base_url: str, timeout_seconds: float) -> None:
        self.peer = Peer("AI content service", base_url, timeout_seconds)

    async def generate(self, request: dict[str, Any]) -> dict[str, Any]:
        _, body = await self.peer.call("POST", "/api/v1/content/generate", json=request)
        return body

    async def validate(
        self, content_id: str, changes: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """The checked version and whether the edit made a new one."""
        status, body = await self.peer.call(
            "POST", f"/api/v1/content/{content_id}/validate", json=changes
        )
        return body, status == 201


class MercadoLibreClient:
    """``/api/v1/mercadolibre/listings``: pictures, item and description in one call."""

    def __init__(self, base_url: str, timeout_seconds: float) -> None:
        self.peer = Peer("MercadoLibre service", base_url, timeout_seconds)

    async def publish(self, listing: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        _, body = await self.peer.call(
            "POST",
            "/api/v1/mercadolibre/listings",
            json=listing,
            headers={"Idempotency-Key": idempotency_key},
        )
        return body
