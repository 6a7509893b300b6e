"""One JSON POST to a provider's API, its failures sorted into the kinds fallback acts on."""

from __future__ import annotations

from typing import Any

import httpx

from intellipost.ai_content.providers.base import ProviderError
from intellipost.shared.http import get_service_client
from intellipost.shared.logging import get_structured_logger

log = get_structured_logger("ai_content.providers")


async def post_json(
    provider: str,
    url: str,
    body: dict[str, Any],
    *,
    headers: dict[str, str],
    timeout_seconds: float,
) -> dict[str, Any]:
    """The answer's JSON; a timeout, 429, 5xx, refusal or unreadable body raises."""
    timeout = httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 5.0))
    try:
        # The caller's IntelliPost token must never reach a third party: no forwarding.
        response = await get_service_client().post(
            url, json=body, headers=headers, forward_auth=False, timeout=timeout
        )
    except httpx.TimeoutException as exc:
        raise ProviderError(provider, "timeout", type(exc).__name__) from exc
    except httpx.HTTPError as exc:
        raise ProviderError(provider, "unavailable", type(exc).__name__) from exc
    status = response.status_code
    if status == 429:
        raise ProviderError(provider, "rate_limited", response.headers.get("retry-after", ""))
    if status >= 500:
        raise ProviderError(provider, "unavailable", f"HTTP {status}")
    if status >= 400:
        # A bad key or model name: the operator must fix the configuration.
        log.error(
            "provider refused the request",
            provider=provider,
            status=status,
            answer=_error_message(response),
        )
        raise ProviderError(provider, "rejected", f"HTTP {status}")
    try:
        data = response.json()
    except ValueError as exc:
        raise ProviderError(provider, "invalid_answer", "body is not JSON") from exc
    if not isinstance(data, dict):
        raise ProviderError(provider, "invalid_answer", "body is not an object")
    return data


def _error_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", ""))[:200]
    return str(error or data)[:200]
