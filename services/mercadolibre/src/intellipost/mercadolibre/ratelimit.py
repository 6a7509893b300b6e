"""The one budget of calls to MercadoLibre, shared by every replica (Redis) or in-process.

Two rules hold together: at most ``requests_per_minute`` calls in any rolling minute (a
sliding window), and no more than ``burst_limit`` at once above the steady rate (a token
bucket refilled at ``requests_per_minute / 60`` per second). A 429 from MercadoLibre pauses
the whole fleet for its ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import collections
import math
import random
import time
import uuid
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from intellipost.shared.logging import get_structured_logger

WINDOW_MS = 60_000

log = get_structured_logger("mercadolibre.ratelimit")


class RateLimitedError(Exception):
    """No budget within the caller's patience; ``retry_after`` seconds until there is."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"MercadoLibre call budget exhausted; retry after {retry_after:.1f}s")
        self.retry_after = retry_after


class LimiterUnavailableError(Exception):
    """The shared budget cannot be read (Redis down): no call goes out uncounted."""


class Backend(Protocol):
    async def take(self) -> int:
        """Spend one call if allowed and return 0, else the milliseconds to wait."""
        ...

    async def pause(self, milliseconds: int) -> None: ...


# Atomic in Redis: the clock is Redis's own (TIME), so replicas with skewed clocks agree.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = redis.call('PTTL', KEYS[3])
if paused > 0 then return paused end
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
local wait = 0
if redis.call('ZCARD', KEYS[2]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  wait = tonumber(oldest[2]) + window - now
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
if tokens < 1 then
  local refill = math.ceil((1 - tokens) / rate)
  if refill > wait then wait = refill end
end
if wait > 0 then return math.max(1, math.ceil(wait)) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate) + 1000)
redis.call('ZADD', KEYS[2], now, ARGV[5])
redis.call('PEXPIRE', KEYS[2], window)
return 0
"""


class RedisBackend:
    def __init__(
        self, redis: Redis, *, prefix: str, requests_per_minute: int, burst_limit: int
    ) -> None:
        self.redis = redis
        # One hash tag, so the three keys live on one node of a Redis Cluster.
        base = f"{prefix}{{ratelimit}}"
        self.keys = [f"{base}:bucket", f"{base}:window", f"{base}:pause"]
        self.args = [requests_per_minute / WINDOW_MS, burst_limit, requests_per_minute, WINDOW_MS]
        self._script = redis.register_script(_TAKE)

    async def take(self) -> int:
        try:
            wait = await self._script(keys=self.keys, args=[*self.args, uuid.uuid4().hex])
        except RedisError as exc:
            raise LimiterUnavailableError(str(exc)) from exc
        return int(wait)

    async def pause(self, milliseconds: int) -> None:
        try:
            current = await self.redis.pttl(self.keys[2])
            if int(current) < milliseconds:
                await self.redis.set(self.keys[2], b"1", px=milliseconds)
        except RedisError as exc:
            raise LimiterUnavailableError(str(exc)) from exc


class MemoryBackend:
    """The same two rules within one process (one replica, or tests)."""

    def __init__(self, *, requests_per_minute: int, burst_limit: int) -> None:
        self.rate = requests_per_minute / WINDOW_MS
        self.burst = float(burst_limit)
        self.limit = requests_per_minute
        self.tokens = float(burst_limit)
        self.updated = self._now()
        self.window: collections.deque[float] = collections.deque()
        self.paused_until = 0.0

    @staticmethod
    def _now() -> float:
        return time.monotonic() * 1000

    async def take(self) -> int:
        now = self._now()
        if self.paused_until > now:
            return math.ceil(self.paused_until - now)
        while self.window and self.window[0] <= now - WINDOW_MS:
            self.window.popleft()
        wait = 0.0
        if len(self.window) >= self.limit:
            wait = self.window[0] + WINDOW_MS - now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            wait = max(wait, (1 - self.tokens) / self.rate)
        if wait > 0:
            return max(1, math.ceil(wait))
        self.tokens -= 1
        self.window.append(now)
        return 0

    async def pause(self, milliseconds: int) -> None:
        self.paused_until = max(self.paused_until, self._now() + milliseconds)


class Throttle:
    """Waits for a turn within ``max_wait_seconds``; past that, the caller is told when."""

    def __init__(self, backend: Backend, *, max_wait_seconds: float) -> None:
        self.backend = backend
        self.max_wait_seconds = max_wait_seconds

    async def acquire(self) -> None:
        deadline = time.monotonic() + self.max_wait_seconds
        while True:
            wait_ms = await self.backend.take()
            if wait_ms == 0:
                return
            wait = wait_ms / 1000
            if time.monotonic() + wait > deadline:
                log.warning("MercadoLibre call budget exhausted", retry_after_s=round(wait, 2))
                raise RateLimitedError(wait)
            # A little jitter, so waiting replicas do not all wake on the same millisecond.
            await asyncio.sleep(wait + random.uniform(0, 0.02))

    async def pause(self, seconds: float) -> None:
        await self.backend.pause(max(1, math.ceil(seconds * 1000)))


def create_throttle(
    redis: Redis | None,
    *,
    prefix: str,
    requests_per_minute: int,
    burst_limit: int,
    max_wait_seconds: float,
) -> Throttle:
    backend: Backend
    if redis is not None:
        backend = RedisBackend(
            redis, prefix=prefix, requests_per_minute=requests_per_minute, burst_limit=burst_limit
        )
    else:
        backend = MemoryBackend(requests_per_minute=requests_per_minute, burst_limit=burst_limit)
    return Throttle(backend, max_wait_seconds=max_wait_seconds)
