"""A small key-value store with TTLs: Redis in production, in-process by default."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from redis.asyncio import Redis

from intellipost.shared.config import RedisMixin


class KeyValueStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(
        self,
        key: str,
        value: bytes,
        ttl_seconds: float | None = None,
        *,
        only_if_absent: bool = False,
    ) -> bool: ...

    async def delete(self, key: str) -> bool: ...

    async def pop(self, key: str) -> bytes | None:
        """Atomically read and delete: single-use values (OAuth state, one-time codes)."""
        ...

    async def ping(self) -> str: ...

    async def aclose(self) -> None: ...


class MemoryStore:
    """Same contract as Redis within one process; fine for one replica and for tests."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._lock = asyncio.Lock()

    def _live(self, key: str) -> bytes | None:
        item = self._data.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= time.monotonic():
            del self._data[key]
            return None
        return value

    async def get(self, key: str) -> bytes | None:
        return self._live(self.prefix + key)

    async def set(
        self,
        key: str,
        value: bytes,
        ttl_seconds: float | None = None,
        *,
        only_if_absent: bool = False,
    ) -> bool:
        key = self.prefix + key
        async with self._lock:
            if only_if_absent and self._live(key) is not None:
                return False
            expires = time.monotonic() + ttl_seconds if ttl_seconds else None
            self._data[key] = (value, expires)
            return True

    async def delete(self, key: str) -> bool:
        return self._data.pop(self.prefix + key, None) is not None

    async def pop(self, key: str) -> bytes | None:
        key = self.prefix + key
        async with self._lock:
            value = self._live(key)
            self._data.pop(key, None)
            return value

    async def ping(self) -> str:
        return "in-process"

    async def aclose(self) -> None:
        self._data.clear()


class RedisStore:
    def __init__(self, redis: Redis, prefix: str = "") -> None:
        self.redis = redis
        self.prefix = prefix

    async def get(self, key: str) -> bytes | None:
        value = await self.redis.get(self.prefix + key)
        return value.encode() if isinstance(value, str) else value

    async def set(
        self,
        key: str,
        value: bytes,
        ttl_seconds: float | None = None,
        *,
        only_if_absent: bool = False,
    ) -> bool:
        px = int(ttl_seconds * 1000) if ttl_seconds else None
        return bool(await self.redis.set(self.prefix + key, value, px=px, nx=only_if_absent))

    async def delete(self, key: str) -> bool:
        return bool(await self.redis.delete(self.prefix + key))

    async def pop(self, key: str) -> bytes | None:
        value = await self.redis.getdel(self.prefix + key)
        return value.encode() if isinstance(value, str) else value

    async def ping(self) -> str:
        await self.redis.ping()
        return "redis"

    async def aclose(self) -> None:
        await self.redis.aclose()


def redis_client(config: RedisMixin) -> Redis | None:
    if not config.redis_url:
        return None
    return Redis.from_url(
        config.redis_url,
        socket_timeout=config.redis_socket_timeout_seconds,
        socket_connect_timeout=config.redis_socket_timeout_seconds,
        health_check_interval=30,
    )


def create_store(config: RedisMixin, namespace: str) -> KeyValueStore:
    """Redis when ``redis_url`` is set, else the in-process store; keys under a namespace."""
    prefix = f"{config.redis_key_prefix}{namespace}:"
    redis = redis_client(config)
    return RedisStore(redis, prefix) if redis is not None else MemoryStore(prefix)
