"""Per-caller rate limits at the edge: the algorithm, its Redis form, and a real gateway."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from redis.asyncio import Redis

from intellipost.gateway.ratelimit import Limiter, MemoryLimiter, RedisLimiter
from tests.support import (
    REDIS_URL,
    Component,
    EchoServer,
    TokenIssuer,
    base_env,
    free_port,
    redis_available,
    unavailable,
)

# --- the algorithm ----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_caller_gets_its_burst_at_once_then_the_steady_rate() -> None:
    clock = Clock()
    limiter = MemoryLimiter(per_minute=60, burst=3, clock=clock)  # one a second

    decisions = [await limiter.check("ana") for _ in range(4)]

    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    assert decisions[3].retry_after == pytest.approx(1.0)
    assert decisions[3].reset == pytest.approx(3.0)  # until the whole burst is back
    clock.now += 0.5
    assert not (await limiter.check("ana")).allowed
    clock.now += 0.5
    assert (await limiter.check("ana")).allowed
    assert not (await limiter.check("ana")).allowed
    clock.now += 10
    assert (await limiter.check("ana")).remaining == 2  # refilled, never above the burst


async def test_callers_have_budgets_of_their_own() -> None:
    limiter = MemoryLimiter(per_minute=60, burst=1, clock=Clock())
    assert (await limiter.check("ana")).allowed
    assert not (await limiter.check("ana")).allowed
    assert (await limiter.check("bruno")).allowed


async def test_refused_requests_do_not_spend_the_budget() -> None:
    clock = Clock()
    limiter = MemoryLimiter(per_minute=60, burst=1, clock=clock)
    assert (await limiter.check("ana")).allowed
    for _ in range(50):  # a client hammering while refused
        assert not (await limiter.check("ana")).allowed
    clock.now += 1
    assert (await limiter.check("ana")).allowed


async def test_the_in_process_table_stays_bounded() -> None:
    clock = Clock()
    limiter = MemoryLimiter(per_minute=60, burst=2, max_keys=100, clock=clock)
    for n in range(1000):
        await limiter.check(f"caller-{n}")
        clock.now += 0.001
    assert len(limiter._tat) <= 100
    # The newest callers are remembered: their spent budget still counts.
    await limiter.check("caller-999")
    assert not (await limiter.check("caller-999")).allowed


# --- in Redis, shared by the replicas ----------------------------------------------------------


@pytest.fixture
async def redis_limiters(redis_url: str, key_prefix: str) -> AsyncIterator[list[Limiter]]:
    """Two gateway replicas' limiters on one Redis."""
    made: list[Limiter] = [
        RedisLimiter(Redis.from_url(redis_url), per_minute=60, burst=3, prefix=key_prefix)
        for _ in range(2)
    ]
    try:
        yield made
    finally:
        for limiter in made:
            await limiter.aclose()


async def test_replicas_share_one_budget_per_caller_in_redis(
    redis_limiters: list[Limiter],
) -> None:
    first, second = redis_limiters
    caller = f"user:{uuid.uuid4().hex}"
    decisions = [await (first if n % 2 else second).check(caller) for n in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    assert 0 < decisions[3].retry_after <= 1.0
    assert (await first.check(f"user:{uuid.uuid4().hex}")).allowed


async def test_concurrent_requests_in_redis_never_exceed_the_burst(
    redis_limiters: list[Limiter],
) -> None:
    caller = f"ip:{uuid.uuid4().hex}"
    results = await asyncio.gather(*(redis_limiters[n % 2].check(caller) for n in range(20)))
    assert sum(d.allowed for d in results) == 3


async def test_with_redis_away_requests_pass() -> None:
    unreachable = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    limiter = RedisLimiter(unreachable, per_minute=60, burst=1, prefix="x:")
    try:
        assert all([(await limiter.check("ana")).allowed for _ in range(3)])
    finally:
        await limiter.aclose()


# --- at a real gateway -------------------------------------------------------------------------


@dataclass
class Edge:
    gateway: Component
    echo: EchoServer
    issuer: TokenIssuer

    def call(self, path: str, token: str | None = None, **headers: str) -> httpx.Response:
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.get(self.gateway.url + path, headers=headers, timeout=10)


@pytest.fixture(scope="module", params=["memory", "redis"])
def edge(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Edge]:
    tmp = tmp_path_factory.mktemp(f"ratelimit-{request.param}")
    issuer = TokenIssuer().serve()
    echo = EchoServer().serve()
    if request.param == "redis" and not asyncio.run(redis_available()):
        unavailable(f"Redis at {REDIS_URL}")
    store = (
        {
            "INTELLIPOST_REDIS_URL": REDIS_URL,
            "INTELLIPOST_GATEWAY_REDIS_KEY_PREFIX": f"intellipost-test:{uuid.uuid4().hex[:10]}:",
        }
        if request.param == "redis"
        else {}
    )
    env = base_env(
        tmp,
        INTELLIPOST_GATEWAY_USER_URL=echo.url,
        INTELLIPOST_GATEWAY_PRODUCT_URL=echo.url,
        INTELLIPOST_JWKS_URL=issuer.jwks_url,
        # Three at once, then one every 20 s: a test never sees a refill.
        INTELLIPOST_GATEWAY_RATE_LIMIT_PER_MINUTE="3",
        INTELLIPOST_GATEWAY_RATE_LIMIT_BURST="3",
        **store,
    )
    gateway = Component("gateway", free_port(), env, tmp / "gateway.log").start()
    try:
        yield Edge(gateway, echo, issuer)
    finally:
        gateway.stop()
        echo.close()
        issuer.close()


def test_past_its_limit_a_caller_gets_429_problem_with_retry_after(edge: Edge) -> None:
    token = edge.issuer.token(f"seller-{uuid.uuid4().hex[:8]}")
    answers = [edge.call("/api/v1/products", token) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.headers["ratelimit-remaining"] for a in answers] == ["2", "1", "0"]
    assert answers[0].headers["ratelimit-limit"] == "3"
    assert answers[0].headers["ratelimit-policy"] == "3;w=60"
    seen_upstream = len(edge.echo.requests)

    correlation = f"flood-{uuid.uuid4().hex}"
    refused = edge.call("/api/v1/products", token, **{"X-Correlation-ID": correlation})

    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"].endswith("/rate-limited")
    assert problem["correlation_id"] == correlation
    assert 1 <= int(refused.headers["retry-after"]) <= 20
    assert refused.headers["ratelimit-remaining"] == "0"
    assert len(edge.echo.requests) == seen_upstream  # nothing reached the service
    [event] = edge.gateway.wait_for_log(
        lambda r: r.get("correlation_id") == correlation and r.get("event_type") == "security"
    )
    assert event["security_event"] == "rate_limited"
    assert event["caller"] == "user"


def test_each_signed_in_user_has_a_budget_of_their_own(edge: Edge) -> None:
    first, second = (edge.issuer.token(f"seller-{uuid.uuid4().hex[:8]}") for _ in range(2))
    for _ in range(3):
        assert edge.call("/api/v1/products", first).status_code == 200
    assert edge.call("/api/v1/products", first).status_code == 429
    assert edge.call("/api/v1/products", second).status_code == 200


def test_anonymous_callers_are_limited_by_address_and_cannot_spoof_it(edge: Edge) -> None:
    # The JWKS route is public: no user, so the client address is the key. The gateway does
    # not trust X-Forwarded-For here, so a made-up one does not buy a fresh budget.
    statuses = [
        edge.call("/.well-known/jwks.json", **{"X-Forwarded-For": f"10.0.0.{n}"}).status_code
        for n in range(4)
    ]
    assert statuses == [200, 200, 200, 429]


def test_health_probes_are_never_limited(edge: Edge) -> None:
    for _ in range(10):
        assert edge.call("/health/live").status_code == 200
    report = edge.call("/health").json()
    assert report["checks"]["rate_limit_store"]["status"] == "healthy"
