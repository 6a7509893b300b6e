"""Daily budget and concurrency cap of paid provider calls, in process and in Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from intellipost.ai_content.limits import (
    Limiter,
    MemoryLimiter,
    RedisLimiter,
    SlotTimeoutError,
    seconds_until_utc_midnight,
)
from tests.support import REDIS_URL, redis_available, unavailable

Make = Callable[..., Limiter]


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[Make]:
    """The same contract from the in-process limiter and the Redis one."""
    made: list[Limiter] = []
    if request.param == "redis" and not await redis_available():
        unavailable(f"Redis at {REDIS_URL}")

    def _make(*, max_concurrent: int = 2, daily_limit: int = 3, lease: float = 30) -> Limiter:
        limiter: Limiter
        if request.param == "memory":
            limiter = MemoryLimiter(max_concurrent=max_concurrent, daily_limit=daily_limit)
        else:
            limiter = RedisLimiter(
                Redis.from_url(REDIS_URL),
                key_prefix,
                max_concurrent=max_concurrent,
                daily_limit=daily_limit,
                lease_seconds=lease,
            )
        made.append(limiter)
        return limiter

    yield _make
    for limiter in made:
        await limiter.aclose()


async def test_the_budget_allows_exactly_the_daily_limit(make: Make) -> None:
    limiter = make(daily_limit=3)
    taken = [await limiter.take_budget() for _ in range(5)]
    assert taken == [True, True, True, False, False]


async def test_a_zero_limit_means_no_limit(make: Make) -> None:
    limiter = make(daily_limit=0)
    assert all([await limiter.take_budget() for _ in range(20)])


async def test_no_more_slots_than_the_cap_are_held_at_once(make: Make) -> None:
    limiter = make(max_concurrent=2)
    held = 0
    most = 0

    async def call() -> None:
        nonlocal held, most
        async with limiter.slot(5.0):
            held += 1
            most = max(most, held)
            await asyncio.sleep(0.05)
            held -= 1

    await asyncio.gather(*(call() for _ in range(6)))
    assert most == 2


async def test_a_full_cap_times_out_the_waiting_call(make: Make) -> None:
    limiter = make(max_concurrent=1)
    async with limiter.slot(1.0):
        with pytest.raises(SlotTimeoutError):
            async with limiter.slot(0.2):
                pass
    async with limiter.slot(0.2):
        pass  # released: free again


async def test_replicas_share_the_redis_budget(redis_url: str, key_prefix: str) -> None:
    replicas = [
        RedisLimiter(
            Redis.from_url(redis_url),
            key_prefix,
            max_concurrent=1,
            daily_limit=4,
            lease_seconds=30,
        )
        for _ in range(2)
    ]
    try:
        taken = await asyncio.gather(*(replicas[i % 2].take_budget() for i in range(8)))
        assert sum(taken) == 4
    finally:
        for replica in replicas:
            await replica.aclose()


async def test_a_crashed_holder_frees_its_redis_slot_when_the_lease_ends(
    redis_url: str, key_prefix: str
) -> None:
    limiter = RedisLimiter(
        Redis.from_url(redis_url), key_prefix, max_concurrent=1, daily_limit=0, lease_seconds=0.3
    )
    try:
        # A holder that died: its lease is there and its release never comes.
        expiry = datetime.now(UTC).timestamp() + 0.5
        await limiter.redis.zadd(f"{key_prefix}slots", {"crashed": expiry})
        with pytest.raises(SlotTimeoutError):
            async with limiter.slot(0.1):
                pass
        async with limiter.slot(3.0):
            pass
    finally:
        await limiter.aclose()


def test_retry_after_counts_to_utc_midnight() -> None:
    assert seconds_until_utc_midnight(datetime(2026, 5, 1, 23, 59, 0, tzinfo=UTC)) == 60
    assert seconds_until_utc_midnight(datetime(2026, 5, 1, 0, 0, 0, tzinfo=UTC)) == 86400
