"""Daily request budget and concurrency cap for paid providers: Redis across replicas, or
in-process for a single one."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from intellipost.ai_content.config import AiContentConfig
from intellipost.shared.kv import redis_client


class SlotTimeoutError(Exception):
    """Every provider slot stayed busy for as long as the call could wait."""


class LimiterUnavailableError(Exception):
    """The shared limiter (Redis) could not be asked."""


def utc_day(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m-%d")


def seconds_until_utc_midnight(now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((tomorrow - now).total_seconds()))


class Limiter(Protocol):
    async def take_budget(self) -> bool:
        """Count one paid call against today's budget; False when it is spent."""
        ...

    def slot(self, wait_seconds: float) -> AbstractAsyncContextManager[None]:
        """Hold one of the concurrent call slots, waiting at most ``wait_seconds``."""
        ...

    async def aclose(self) -> None: ...


class MemoryLimiter:
    def __init__(self, *, max_concurrent: int, daily_limit: int) -> None:
        self.daily_limit = daily_limit
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self._day = ""
        self._used = 0

    async def take_budget(self) -> bool:
        if self.daily_limit == 0:
            return True
        today = utc_day()
        if today != self._day:
            self._day, self._used = today, 0
        if self._used >= self.daily_limit:
            return False
        self._used += 1
        return True

    @asynccontextmanager
    async def slot(self, wait_seconds: float) -> AsyncIterator[None]:
        try:
            await asyncio.wait_for(self._semaphore.acquire(), timeout=max(wait_seconds, 0.001))
        except TimeoutError as exc:
            raise SlotTimeoutError from exc
        try:
            yield
        finally:
            self._semaphore.release()

    async def aclose(self) -> None:
        return None


# Atomic check-and-count: two replicas never both take the last call of the day.
BUDGET_SCRIPT = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""
# A slot is a lease in a sorted set scored by its expiry: a replica that dies holding one
# frees it when the lease runs out instead of shrinking the cap for good.
SLOT_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
"""


class RedisLimiter:
    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        max_concurrent: int,
        daily_limit: int,
        lease_seconds: float,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.max_concurrent = max_concurrent
        self.daily_limit = daily_limit
        self.lease_seconds = lease_seconds
        self._budget = redis.register_script(BUDGET_SCRIPT)
        self._slot = redis.register_script(SLOT_SCRIPT)

    async def take_budget(self) -> bool:
        if self.daily_limit == 0:
            return True
        key = f"{self.prefix}budget:{utc_day()}"
        try:
            taken = await self._budget(keys=[key], args=[self.daily_limit, 2 * 86400])
        except RedisError as exc:
            raise LimiterUnavailableError(type(exc).__name__) from exc
        return bool(taken)

    @asynccontextmanager
    async def slot(self, wait_seconds: float) -> AsyncIterator[None]:
        key = f"{self.prefix}slots"
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait_seconds
        pause = 0.02
        try:
            while True:
                now = time.time()
                acquired = await self._slot(
                    keys=[key],
                    args=[
                        now,
                        self.max_concurrent,
                        now + self.lease_seconds,
                        token,
                        int(self.lease_seconds * 2000),
                    ],
                )
                if acquired:
                    break
                if time.monotonic() + pause > deadline:
                    raise SlotTimeoutError
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.25)
        except RedisError as exc:
            raise LimiterUnavailableError(type(exc).__name__) from exc
        try:
            yield
        finally:
            # If Redis is gone the lease simply expires.
            with contextlib.suppress(RedisError):
                await self.redis.zrem(key, token)

    async def aclose(self) -> None:
        await self.redis.aclose()


def build_limiter(config: AiContentConfig) -> Limiter:
    """Redis-backed when Redis is configured (shared by every replica), else in-process."""
    redis = redis_client(config)
    if redis is None:
        return MemoryLimiter(
            max_concurrent=config.max_concurrent_requests,
            daily_limit=config.daily_request_limit,
        )
    return RedisLimiter(
        redis,
        f"{config.redis_key_prefix}ai_content:limits:",
        max_concurrent=config.max_concurrent_requests,
        daily_limit=config.daily_request_limit,
        # A lease outlives the longest call, so only a crashed holder ever lets it lapse.
        lease_seconds=config.request_timeout_seconds + 5,
    )
