"""Per-caller request limits at the edge: GCRA in-process, or in Redis for the whole fleet.

Each caller (the verified user, else the client address) gets ``per_minute`` requests a
minute with bursts of up to ``burst``, by the generic cell rate algorithm: one number per
caller, the time its bucket would be full again, so a check is one read and one write.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from intellipost.shared.context import user_id_var
from intellipost.shared.errors import problem_response, problem_type
from intellipost.shared.logging import get_structured_logger

log = get_structured_logger("gateway.ratelimit")

# A refused caller is logged once a minute, not once per refused request of a flood.
_LOG_EVERY_SECONDS = 60.0
_MAX_LOGGED = 10_000


class Decision(NamedTuple):
    allowed: bool
    remaining: int
    # Seconds until the caller's whole burst is available again.
    reset: float
    # Seconds until one more request is allowed (0 when this one is).
    retry_after: float


class Limiter(Protocol):
    async def check(self, key: str) -> Decision: ...

    async def ping(self) -> str: ...

    async def aclose(self) -> None: ...


def _decide(tat: float, now: float, interval: float, capacity: float) -> tuple[Decision, float]:
    """The decision and the caller's new theoretical arrival time (all in one unit)."""
    tat = max(tat, now)
    new_tat = tat + interval
    ahead = new_tat - now
    if ahead > capacity + 1e-9:
        return Decision(False, 0, tat - now, ahead - capacity), tat
    remaining = int((capacity - ahead) / interval + 1e-9)
    return Decision(True, remaining, ahead, 0.0), new_tat


class MemoryLimiter:
    """Within one process (one gateway replica, or the embedded default). Bounded."""

    def __init__(
        self,
        per_minute: int,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = 60.0 / per_minute
        self.capacity = burst * self.interval
        self.max_keys = max_keys
        self.clock = clock
        self._tat: dict[str, float] = {}

    async def check(self, key: str) -> Decision:
        now = self.clock()
        decision, tat = _decide(self._tat.get(key, now), now, self.interval, self.capacity)
        if decision.allowed:
            if key not in self._tat and len(self._tat) >= self.max_keys:
                self._evict(now)
            self._tat[key] = tat
        return decision

    def _evict(self, now: float) -> None:
        # A caller whose bucket is full again is the same as one never seen.
        for key in [k for k, tat in self._tat.items() if tat <= now]:
            del self._tat[key]
        while len(self._tat) >= self.max_keys:
            del self._tat[next(iter(self._tat))]

    async def ping(self) -> str:
        return f"in-process, {len(self._tat)} callers"

    async def aclose(self) -> None:
        pass


# Atomic in Redis, on Redis's own clock (TIME), so gateway replicas with skewed clocks agree.
# Times are milliseconds; numbers go back as strings (Lua numbers would be truncated).
_CHECK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local ahead = new_tat - now
if ahead > capacity + 0.000001 then
  return {0, tostring(tat - now), tostring(ahead - capacity)}
end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(ahead))
return {1, tostring(ahead), '0'}
"""


class RedisLimiter:
    """Shared by every gateway replica. When Redis fails, requests pass (logged): the limit
    protects the fleet, and an outage of Redis must not become an outage of the fleet."""

    def __init__(self, redis: Redis, per_minute: int, burst: int, *, prefix: str) -> None:
        self.redis = redis
        self.interval_ms = 60_000.0 / per_minute
        self.capacity_ms = burst * self.interval_ms
        self.prefix = f"{prefix}ratelimit:"
        self._script = redis.register_script(_CHECK)
        self._warned_at = -math.inf

    async def check(self, key: str) -> Decision:
        try:
            allowed, first, second = await self._script(
                keys=[self.prefix + key], args=[self.interval_ms, self.capacity_ms]
            )
        except (RedisError, OSError) as exc:
            now = time.monotonic()
            if now - self._warned_at > _LOG_EVERY_SECONDS:
                self._warned_at = now
                log.warning("rate limit store unavailable; requests pass", error=str(exc))
            return Decision(True, 0, 0.0, 0.0)
        if int(allowed):
            ahead = float(first)
            remaining = int((self.capacity_ms - ahead) / self.interval_ms + 1e-9)
            return Decision(True, remaining, ahead / 1000, 0.0)
        return Decision(False, 0, float(first) / 1000, float(second) / 1000)

    async def ping(self) -> str:
        await self.redis.ping()
        return "redis"

    async def aclose(self) -> None:
        await self.redis.aclose()


def client_address(scope: Scope, trust_forwarded: bool) -> str:
    """The caller's address; behind a trusted proxy, the one that proxy saw (the last
    ``X-Forwarded-For`` entry: the earlier ones are whatever the client claimed)."""
    if trust_forwarded:
        forwarded = [v for k, v in scope["headers"] if k == b"x-forwarded-for"]
        if forwarded:
            last: str = forwarded[-1].decode("latin-1").rsplit(",", 1)[-1].strip()
            if last:
                return last
    client: tuple[str, int] | None = scope.get("client")
    return client[0] if client else "unknown"


class RateLimitMiddleware:
    """Pure ASGI: 429 problem+json with ``Retry-After`` past the caller's limit.

    Sits inside edge auth, so a signed-in caller is limited as a user (wherever they come
    from) and anyone else by address. Every limited answer carries ``RateLimit-Limit``,
    ``RateLimit-Remaining``, ``RateLimit-Reset`` and ``RateLimit-Policy`` (IETF httpapi
    draft, the form Kong and Envoy send). Health and the gateway's own paths are exempt:
    an orchestrator's probes must never be refused.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: Limiter,
        per_minute: int,
        burst: int,
        exempt_prefixes: tuple[str, ...],
        trust_forwarded: bool,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.exempt_prefixes = exempt_prefixes
        self.trust_forwarded = trust_forwarded
        self.limit = str(burst).encode()
        self.policy = f"{burst};w={math.ceil(60 * burst / per_minute)}".encode()
        self._logged: dict[str, float] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        user_id = user_id_var.get()
        key = f"user:{user_id}" if user_id else f"ip:{client_address(scope, self.trust_forwarded)}"
        decision = await self.limiter.check(key)
        headers = [
            (b"ratelimit-limit", self.limit),
            (b"ratelimit-remaining", str(decision.remaining).encode()),
            (b"ratelimit-reset", str(math.ceil(decision.reset)).encode()),
            (b"ratelimit-policy", self.policy),
        ]
        if not decision.allowed:
            await self._refuse(scope, receive, send, key, decision, headers)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        key: str,
        decision: Decision,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        retry_after = max(1, math.ceil(decision.retry_after))
        now = time.monotonic()
        if now - self._logged.get(key, -math.inf) > _LOG_EVERY_SECONDS:
            if len(self._logged) >= _MAX_LOGGED:
                self._logged.clear()
            self._logged[key] = now
            log.security_event(
                "rate_limited",
                "low",
                caller=key.partition(":")[0],
                client=client_address(scope, self.trust_forwarded),
                method=scope["method"],
                path=scope["path"],
                retry_after_s=retry_after,
            )
        response = problem_response(
            429,
            title="Too many requests",
            detail=f"Request limit reached; retry after {retry_after} s.",
            type_=problem_type("rate-limited"),
            instance=scope["path"],
            headers={"Retry-After": str(retry_after)},
        )
        response.raw_headers.extend(headers)
        await response(scope, receive, send)
