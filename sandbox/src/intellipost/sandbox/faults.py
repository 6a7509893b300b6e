"""What tests switch and read: injected latency and errors, the per-app limit, call counts."""

from __future__ import annotations

import math
import random
import time
from collections import Counter, deque
from typing import Any

from pydantic import BaseModel, Field

from intellipost.sandbox.config import SandboxConfig
from intellipost.sandbox.errors import ApiError

_ERROR_CODES = {
    429: "too_many_requests",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}
WINDOW_SECONDS = 60.0


class Faults(BaseModel):
    """The runtime switches (``POST /_sandbox/faults``); unset fields keep their value."""

    latency_ms: int = Field(0, ge=0, le=60_000)
    error_rate: float = Field(0.0, ge=0, le=1)
    error_status: int = Field(500, ge=400, le=599)
    fail_next: int = Field(0, ge=0, description="The next N calls answer fail_status.")
    fail_status: int = Field(503, ge=400, le=599)
    retry_after: int = Field(1, ge=0, description="Retry-After of injected 429/503 answers.")
    route: str | None = Field(
        None, description='Limit fail_next and error_rate to one route, e.g. "POST /items".'
    )
    rate_limit_per_minute: int = Field(1500, ge=1)


class Stats:
    """Every call that reached the MercadoLibre-shaped API, counted by route."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()
        self.rate_limited: Counter[str] = Counter()
        self.grants: Counter[str] = Counter()
        self.grant_failures: Counter[str] = Counter()
        self.recent: deque[dict[str, Any]] = deque(maxlen=1000)

    def arrived(self, route: str) -> None:
        self.calls[route] += 1
        self.recent.append({"route": route, "at": time.time()})

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": sum(self.calls.values()),
            "calls": dict(self.calls),
            "injected": dict(self.injected),
            "rate_limited": dict(self.rate_limited),
            "grants": dict(self.grants),
            "grant_failures": dict(self.grant_failures),
            "recent": list(self.recent),
        }


class Gate:
    """Decides, per call, whether it is delayed, rate limited or failed on purpose."""

    def __init__(self, config: SandboxConfig) -> None:
        self.defaults = Faults(
            latency_ms=config.latency_ms,
            error_rate=config.error_rate,
            error_status=config.error_status,
            rate_limit_per_minute=config.rate_limit_per_minute,
        )
        self.faults = self.defaults.model_copy()
        self.stats = Stats()
        self._windows: dict[str, deque[float]] = {}

    def configure(self, changes: dict[str, Any]) -> Faults:
        self.faults = Faults.model_validate({**self.faults.model_dump(), **changes})
        return self.faults

    def reset(self) -> None:
        self.faults = self.defaults.model_copy()
        self.stats = Stats()
        self._windows.clear()

    @property
    def latency_seconds(self) -> float:
        return self.faults.latency_ms / 1000

    def admit(self, route: str, app: str) -> None:
        """Count the call, then raise the 429 or injected error it gets, if any."""
        self.stats.arrived(route)
        self._rate_limit(route, app)
        status = self._injected_status(route)
        if status is not None:
            self.stats.injected[route] += 1
            headers = {}
            if status in (429, 503):
                headers["Retry-After"] = str(self.faults.retry_after)
            raise ApiError(
                status,
                _ERROR_CODES.get(status, "error"),
                "injected by the sandbox",
                headers=headers,
            )

    def _rate_limit(self, route: str, app: str) -> None:
        now = time.monotonic()
        window = self._windows.setdefault(app, deque())
        while window and window[0] <= now - WINDOW_SECONDS:
            window.popleft()
        if len(window) >= self.faults.rate_limit_per_minute:
            self.stats.rate_limited[route] += 1
            retry_after = max(1, math.ceil(window[0] + WINDOW_SECONDS - now))
            raise ApiError(
                429,
                "too_many_requests",
                "Too many requests",
                headers={"Retry-After": str(retry_after)},
            )
        window.append(now)

    def _injected_status(self, route: str) -> int | None:
        faults = self.faults
        if faults.route is not None and faults.route != route:
            return None
        if faults.fail_next > 0:
            faults.fail_next -= 1
            return faults.fail_status
        if faults.error_rate > 0 and random.random() < faults.error_rate:
            return faults.error_status
        return None
