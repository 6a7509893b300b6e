"""The MercadoLibre API client: real request shapes, the shared budget, retries and back-off.

It sends what api.mercadolibre.com expects (form-encoded token requests, JSON items,
multipart ``file`` uploads, ``Authorization: Bearer``), so pointing ``api_base_url`` at the
real API needs no other change. Every attempt passes the fleet-wide throttle first.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from intellipost.mercadolibre.config import MercadoLibreConfig
from intellipost.mercadolibre.ratelimit import RateLimitedError, Throttle
from intellipost.shared.logging import get_structured_logger
from intellipost.shared.telemetry import instrument_httpx

# Answers that mean "not processed, try later" whatever the method.
_RETRY_ANY = frozenset({503})
# Answers after which only a request that is safe to repeat is sent again.
_RETRY_IDEMPOTENT = frozenset({500, 502, 504})
# Errors raised before the request left this process: nothing reached MercadoLibre.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

log = get_structured_logger("mercadolibre.client")


class MercadoLibreError(Exception):
    """A 4xx answer: MercadoLibre understood and refused. ``causes`` is its `cause` list."""

    def __init__(
        self, status: int, error: str, message: str, causes: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(f"{status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message
        self.causes = causes or []

    def has_cause(self, code: str) -> bool:
        return any(c.get("code") == code for c in self.causes if isinstance(c, dict))


class MercadoLibreUnavailableError(Exception):
    """MercadoLibre did not answer usefully after the retries allowed."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class TokenSet:
    access_token: str
    refresh_token: str
    expires_in: int
    scope: str
    user_id: int


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_from(response: httpx.Response) -> MercadoLibreError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return MercadoLibreError(response.status_code, "error", response.text[:200])
    causes = body.get("cause")
    return MercadoLibreError(
        response.status_code,
        str(body.get("error") or "error"),
        str(body.get("message") or body.get("error_description") or response.reason_phrase),
        causes if isinstance(causes, list) else [],
    )


class MercadoLibreClient:
    def __init__(self, config: MercadoLibreConfig, throttle: Throttle) -> None:
        self.config = config
        self.throttle = throttle
        self._http = httpx.AsyncClient(
            base_url=config.api_base_url.rstrip("/"),
            timeout=httpx.Timeout(config.request_timeout_seconds, connect=3.0),
            headers={"Accept": "application/json", "User-Agent": "IntelliPost/1.0"},
            follow_redirects=False,
        )
        instrument_httpx(self._http)
        # Outcome of the latest call, for the passive health check (probes cost no budget).
        self._last_failure: tuple[float, str] | None = None

    async def health(self) -> str:
        """Non-critical check: raises while the latest call found MercadoLibre unavailable."""
        if self._last_failure is not None:
            at, reason = self._last_failure
            raise RuntimeError(f"unavailable {time.monotonic() - at:.0f}s ago ({reason})")
        return self.config.api_base_url

    async def aclose(self) -> None:
        await self._http.aclose()

    def _delay(self, attempt: int) -> float:
        base = self.config.retry_delay_seconds * self.config.backoff_multiplier**attempt
        return base * random.uniform(0.9, 1.1)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        idempotent: bool,
        **kwargs: Any,
    ) -> httpx.Response:
        """One logical call: throttle, send, and retry what is safe to retry."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        attempt = 0
        while True:
            await self.throttle.acquire()
            reason: str
            try:
                response = await self._http.request(method, path, headers=headers, **kwargs)
            except httpx.TransportError as exc:
                reason = type(exc).__name__
                retryable = idempotent or isinstance(exc, _NOT_SENT)
                delay = self._delay(attempt)
            else:
                status = response.status_code
                if status < 500:
                    self._last_failure = None
                if status < 400:
                    return response
                if status == 429:
                    # Honoured fleet-wide: every replica's next call waits for the pause.
                    wait = _retry_after(response.headers.get("retry-after"))
                    wait = self._delay(attempt) if wait is None else wait
                    await self.throttle.pause(wait)
                    if attempt >= self.config.max_retries:
                        raise RateLimitedError(wait)
                    attempt += 1
                    log.warning("MercadoLibre answered 429", path=path, retry_after_s=wait)
                    continue
                if status not in _RETRY_ANY and status not in _RETRY_IDEMPOTENT:
                    raise _error_from(response)
                reason = f"HTTP {status}"
                retryable = idempotent or status in _RETRY_ANY
                hinted = _retry_after(response.headers.get("retry-after"))
                delay = max(self._delay(attempt), hinted or 0.0)
            if not retryable or attempt >= self.config.max_retries:
                log.warning(
                    "MercadoLibre call failed",
                    method=method,
                    path=path,
                    reason=reason,
                    attempts=attempt + 1,
                )
                self._last_failure = (time.monotonic(), reason)
                raise MercadoLibreUnavailableError(reason, retry_after=max(1.0, delay))
            attempt += 1
            log.warning(
                "retrying MercadoLibre call",
                method=method,
                path=path,
                reason=reason,
                attempt=attempt,
                delay_ms=round(delay * 1000),
            )
            await asyncio.sleep(delay)

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self._call(method, path, **kwargs)).json()

    # --- OAuth ----------------------------------------------------------------------------

    async def _token(self, form: dict[str, str]) -> TokenSet:
        form = {
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret.get_secret_value(),
            **form,
        }
        # A code or refresh token is single-use: a request that may have arrived is not resent.
        body = await self._json("POST", "/oauth/token", data=form, idempotent=False)
        return TokenSet(
            access_token=str(body["access_token"]),
            refresh_token=str(body["refresh_token"]),
            expires_in=int(body["expires_in"]),
            scope=str(body.get("scope", "")),
            user_id=int(body["user_id"]),
        )

    async def exchange_code(self, code: str, *, verifier: str, redirect_uri: str) -> TokenSet:
        return await self._token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            }
        )

    async def refresh(self, refresh_token: str) -> TokenSet:
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def me(self, token: str) -> dict[str, Any]:
        body: dict[str, Any] = await self._json("GET", "/users/me", token=token, idempotent=True)
        return body

    # --- Categories -----------------------------------------------------------------------

    async def domain_discovery(
        self, site: str, query: str, *, limit: int, token: str | None = None
    ) -> list[dict[str, Any]]:
        body = await self._json(
            "GET",
            f"/sites/{site}/domain_discovery/search",
            params={"q": query, "limit": limit},
            token=token,
            idempotent=True,
        )
        return (
            [entry for entry in body if isinstance(entry, dict)] if isinstance(body, list) else []
        )

    async def category(self, category_id: str) -> dict[str, Any]:
        body: dict[str, Any] = await self._json(
            "GET", f"/categories/{category_id}", idempotent=True
        )
        return body

    async def category_attributes(self, category_id: str) -> list[dict[str, Any]]:
        body: list[dict[str, Any]] = await self._json(
            "GET", f"/categories/{category_id}/attributes", idempotent=True
        )
        return body

    # --- Pictures, items, descriptions ----------------------------------------------------

    async def upload_picture(
        self, token: str, content: bytes, *, filename: str, content_type: str
    ) -> dict[str, Any]:
        # Uploading twice only leaves an unused picture behind: safe to repeat.
        body: dict[str, Any] = await self._json(
            "POST",
            "/pictures/items/upload",
            token=token,
            files={"file": (filename, content, content_type)},
            idempotent=True,
        )
        return body

    async def create_item(self, token: str, item: dict[str, Any]) -> dict[str, Any]:
        # Not repeated after an ambiguous failure: a second POST could list the item twice.
        body: dict[str, Any] = await self._json(
            "POST", "/items", token=token, json=item, idempotent=False
        )
        return body

    async def get_item(self, token: str, item_id: str) -> dict[str, Any]:
        body: dict[str, Any] = await self._json(
            "GET", f"/items/{item_id}", token=token, idempotent=True
        )
        return body

    async def update_item(
        self, token: str, item_id: str, changes: dict[str, Any]
    ) -> dict[str, Any]:
        body: dict[str, Any] = await self._json(
            "PUT", f"/items/{item_id}", token=token, json=changes, idempotent=True
        )
        return body

    async def set_description(self, token: str, item_id: str, plain_text: str) -> None:
        """POST the description; when the item already has one (a second POST fails), PUT."""
        payload = {"plain_text": plain_text}
        path = f"/items/{item_id}/description"
        try:
            # A repeated POST fails as "already exists" and falls through to the PUT below.
            await self._call("POST", path, token=token, json=payload, idempotent=True)
        except MercadoLibreError as exc:
            if exc.status != 400 or not (
                exc.has_cause("item.description.already_exists") or "already" in exc.message.lower()
            ):
                raise
            await self._call("PUT", path, token=token, json=payload, idempotent=True)
