"""The key-value store contract, on Redis and on the in-process default alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from intellipost.shared.kv import KeyValueStore, MemoryStore, RedisStore
from tests.support import REDIS_URL, redis_available, unavailable


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[KeyValueStore]:
    if request.param == "memory":
        yield MemoryStore(key_prefix)
        return
    if not await redis_available():
        unavailable(f"Redis at {REDIS_URL}")
    redis = Redis.from_url(REDIS_URL)
    yield RedisStore(redis, key_prefix)
    keys = [k async for k in redis.scan_iter(match=key_prefix + "*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def test_set_get_delete(store: KeyValueStore) -> None:
    assert await store.get("a") is None
    assert await store.set("a", b"1")
    assert await store.get("a") == b"1"
    assert await store.delete("a")
    assert await store.get("a") is None
    assert not await store.delete("a")


async def test_values_expire_after_their_ttl(store: KeyValueStore) -> None:
    await store.set("ttl", b"x", ttl_seconds=0.2)
    assert await store.get("ttl") == b"x"
    await asyncio.sleep(0.3)
    assert await store.get("ttl") is None


async def test_only_if_absent_does_not_overwrite(store: KeyValueStore) -> None:
    assert await store.set("once", b"first", only_if_absent=True)
    assert not await store.set("once", b"second", only_if_absent=True)
    assert await store.get("once") == b"first"


async def test_pop_is_single_use_even_when_raced(store: KeyValueStore) -> None:
    await store.set("state", b"v", ttl_seconds=10)
    results = await asyncio.gather(*(store.pop("state") for _ in range(10)))
    assert results.count(b"v") == 1
    assert results.count(None) == 9


async def test_ping_names_the_backend(store: KeyValueStore) -> None:
    assert await store.ping() in {"redis", "in-process"}
