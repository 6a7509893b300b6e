"""Short mutual-exclusion locks across replicas (Redis) or within one process.

A lock is a key holding a random owner token with a TTL; only the owner's token releases
it (compare-and-delete in one Lua call), so a holder whose lock expired cannot free the
next holder's.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from redis.asyncio import Redis

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_POLL_SECONDS = 0.05


class LockTimeoutError(Exception):
    """Another holder kept the lock for longer than this caller was willing to wait."""


class LockBackend(Protocol):
    async def try_acquire(self, key: str, token: str, ttl_seconds: float) -> bool: ...

    async def release(self, key: str, token: str) -> None: ...


class RedisLocks:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._release = redis.register_script(_RELEASE)

    async def try_acquire(self, key: str, token: str, ttl_seconds: float) -> bool:
        px = max(1, int(ttl_seconds * 1000))
        return bool(await self.redis.set(self.prefix + key, token, px=px, nx=True))

    async def release(self, key: str, token: str) -> None:
        await self._release(keys=[self.prefix + key], args=[token])


class MemoryLocks:
    def __init__(self) -> None:
        self._held: dict[str, tuple[str, float]] = {}

    async def try_acquire(self, key: str, token: str, ttl_seconds: float) -> bool:
        now = time.monotonic()
        held = self._held.get(key)
        if held is not None and held[1] > now:
            return False
        self._held[key] = (token, now + ttl_seconds)
        return True

    async def release(self, key: str, token: str) -> None:
        held = self._held.get(key)
        if held is not None and held[0] == token:
            del self._held[key]


class Locks:
    def __init__(self, backend: LockBackend) -> None:
        self.backend = backend

    @asynccontextmanager
    async def hold(
        self, key: str, *, ttl_seconds: float, wait_seconds: float
    ) -> AsyncIterator[None]:
        """Hold ``key`` for the block; wait up to ``wait_seconds`` for it, else LockTimeoutError."""
        token = secrets.token_hex(16)
        deadline = time.monotonic() + wait_seconds
        while not await self.backend.try_acquire(key, token, ttl_seconds):
            if time.monotonic() >= deadline:
                raise LockTimeoutError(key)
            await asyncio.sleep(_POLL_SECONDS)
        try:
            yield
        finally:
            await self.backend.release(key, token)


def create_locks(redis: Redis | None, prefix: str) -> Locks:
    return Locks(RedisLocks(redis, prefix) if redis is not None else MemoryLocks())
