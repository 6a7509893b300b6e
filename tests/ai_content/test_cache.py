"""The generation cache: identical input skips the provider, in memory and in this
machine's Redis (shared by replicas)."""

from __future__ import annotations

from redis.asyncio import Redis

from tests.ai_content.conftest import Build, nike, openai_settings
from tests.ai_content.fakes import ModelServer, Reply
from tests.support import free_port


async def test_identical_input_is_served_from_the_in_memory_cache(
    build: Build, model_server: ModelServer
) -> None:
    harness = await build(**openai_settings(model_server))
    first = await harness.service.generate("seller-1", nike())
    again = await harness.service.generate("seller-1", nike())
    assert not first.cached
    assert again.cached
    # A retried request returns the version it made; it does not stack a duplicate.
    assert again.version.id == first.version.id
    assert not again.created
    assert len(model_server.calls("openai")) == 1

    other_product = await harness.service.generate("seller-1", nike(product_id="prod-2"))
    assert other_product.cached
    assert other_product.created
    assert other_product.version.version == 1
    assert other_product.version.title == first.version.title
    assert other_product.version.cached
    assert len(model_server.calls("openai")) == 1


async def test_any_change_of_input_misses_the_cache(
    build: Build, model_server: ModelServer
) -> None:
    harness = await build(**openai_settings(model_server))
    await harness.service.generate("seller-1", nike())
    changed = [
        nike(prompt="Zapatillas Nike Air Max 90 negras talle 42, nuevas"),
        nike(language="pt"),
        nike(site="MLC"),
        nike(images=[]),
        nike(category_hint="zapatillas urbanas"),
    ]
    for request in changed:
        outcome = await harness.service.generate("seller-1", request)
        assert not outcome.cached
    assert len(model_server.calls("openai")) == 1 + len(changed)


async def test_a_fallback_answer_is_not_cached(build: Build, model_server: ModelServer) -> None:
    harness = await build(**openai_settings(model_server), fallback_provider="local")
    model_server.script(Reply(status=503))
    first = await harness.service.generate("seller-1", nike())
    second = await harness.service.generate("seller-1", nike())
    assert first.version.provider == "local"
    assert second.version.provider == "openai"
    assert not second.cached
    assert len(model_server.calls("openai")) == 2


async def test_replicas_share_the_cache_in_redis(
    build: Build, model_server: ModelServer, redis_url: str, key_prefix: str
) -> None:
    settings = openai_settings(
        model_server, redis_url=redis_url, redis_key_prefix=key_prefix, cache_ttl_hours=2
    )
    replica_a = await build(**settings)
    replica_b = await build(**settings)
    first = await replica_a.service.generate("seller-1", nike())
    second = await replica_b.service.generate("seller-1", nike())
    assert not first.cached
    assert second.cached
    assert second.created
    assert second.version.title == first.version.title
    assert second.version.provider == "openai"
    assert len(model_server.calls("openai")) == 1

    redis = Redis.from_url(redis_url)
    try:
        keys = [k async for k in redis.scan_iter(f"{key_prefix}ai_content:cache:*")]
        assert len(keys) == 1
        ttl = await redis.ttl(keys[0])
        assert 7000 < ttl <= 7200
    finally:
        await redis.aclose()


async def test_a_cache_that_cannot_be_reached_only_costs_a_generation(build: Build) -> None:
    harness = await build(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_socket_timeout_seconds=0.5
    )
    outcome = await harness.service.generate("seller-1", nike())
    assert outcome.created
    assert not outcome.cached
    assert outcome.version.provider == "local"
