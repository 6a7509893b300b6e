"""Generated content cached by its input: identical requests skip the provider."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from intellipost.ai_content.categories import Category
from intellipost.ai_content.providers.base import Draft
from intellipost.ai_content.schemas import Attribute, GenerateRequest
from intellipost.shared.kv import KeyValueStore
from intellipost.shared.logging import get_structured_logger

log = get_structured_logger("ai_content.cache")

# Bumped when the cached shape or the generator's behaviour changes, so old entries miss.
CACHE_VERSION = 1


def input_key(request: GenerateRequest, language: str, provider: str, model: str) -> str:
    """A digest of everything that shapes the output (the product id does not)."""
    material = {
        "v": CACHE_VERSION,
        "prompt": request.prompt,
        "images": [image.model_dump(mode="json") for image in request.images],
        "site": request.site,
        "language": language,
        "category_hint": request.category_hint,
        "provider": provider,
        "model": model,
    }
    encoded = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class CachedContent:
    draft: Draft
    category: Category

    def encode(self) -> bytes:
        body: dict[str, Any] = {
            "title": self.draft.title,
            "description": self.draft.description,
            "attributes": [a.model_dump() for a in self.draft.attributes],
            "provider": self.draft.provider,
            "model": self.draft.model,
            "category": self.category.as_dict(),
        }
        return json.dumps(body, ensure_ascii=False).encode()

    @classmethod
    def decode(cls, raw: bytes) -> CachedContent:
        body = json.loads(raw)
        draft = Draft(
            title=body["title"],
            description=body["description"],
            attributes=tuple(Attribute.model_validate(a) for a in body["attributes"]),
            provider=body["provider"],
            model=body["model"],
        )
        return cls(draft, Category.from_dict(body["category"]))


class ContentCache:
    """A miss is never an error: a cache that cannot answer only costs a generation."""

    def __init__(self, store: KeyValueStore, ttl_seconds: float) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds

    async def get(self, key: str) -> CachedContent | None:
        try:
            raw = await self.store.get(key)
        except (RedisError, OSError) as exc:
            log.warning("content cache unavailable", error=type(exc).__name__)
            return None
        if raw is None:
            return None
        try:
            return CachedContent.decode(raw)
        except (ValueError, KeyError, TypeError):
            log.warning("content cache entry unreadable; regenerating", key=key[:12])
            return None

    async def put(self, key: str, content: CachedContent) -> None:
        try:
            await self.store.set(key, content.encode(), self.ttl_seconds)
        except (RedisError, OSError) as exc:
            log.warning("content cache unavailable", error=type(exc).__name__)

    async def ping(self) -> str:
        return await self.store.ping()

    async def aclose(self) -> None:
        await self.store.aclose()
