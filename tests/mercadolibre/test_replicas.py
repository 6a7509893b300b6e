"""Two service processes sharing PostgreSQL and the machine's Redis, against one sandbox."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from intellipost.mercadolibre.crypto import TokenCipher
from tests.mercadolibre.support import (
    API,
    DEV_KEY,
    auth,
    connect,
    connection_row,
    execute,
    listing,
    start_service,
)
from tests.sandbox.support import SandboxControl, start_sandbox
from tests.support import (
    REDIS_URL,
    Component,
    TokenIssuer,
    create_pg_database,
    drop_pg_database,
    redis_available,
    unavailable,
)


@dataclass
class Backends:
    database_url: str
    prefixes: list[str]

    def prefix(self) -> str:
        """A Redis namespace of its own (a fresh budget, fresh locks)."""
        value = f"intellipost-test:{uuid.uuid4().hex[:10]}:"
        self.prefixes.append(value)
        return value


@pytest.fixture(scope="module")
async def backends() -> AsyncIterator[Backends]:
    if not await redis_available():
        unavailable(f"Redis at {REDIS_URL}")
    url = await create_pg_database()
    found = Backends(url, [])
    try:
        yield found
    finally:
        await drop_pg_database(url)
        redis = Redis.from_url(REDIS_URL)
        for prefix in found.prefixes:
            async for name in redis.scan_iter(match=prefix + "*"):
                await redis.delete(name)
        await redis.aclose()


@pytest.fixture(scope="module")
def issuer() -> Iterator[TokenIssuer]:
    served = TokenIssuer().serve()
    yield served
    served.close()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Component]:
    component = start_sandbox(tmp_path_factory.mktemp("sandbox"))
    yield component
    component.stop()


def start_pair(
    tmp: Path, sandbox: Component, issuer: TokenIssuer, backends: Backends, **extra: str
) -> list[Component]:
    """Replicas A and B: one database, one Redis namespace, one registered callback (A's)."""
    prefix = backends.prefix()
    first = start_service(
        tmp,
        sandbox=sandbox,
        issuer=issuer,
        name=f"replica-a-{prefix[-11:-1]}",
        INTELLIPOST_MERCADOLIBRE_DATABASE_URL=backends.database_url,
        INTELLIPOST_REDIS_URL=REDIS_URL,
        INTELLIPOST_MERCADOLIBRE_REDIS_KEY_PREFIX=prefix,
        settings=extra,
    )
    try:
        second = start_service(
            tmp,
            sandbox=sandbox,
            issuer=issuer,
            name=f"replica-b-{prefix[-11:-1]}",
            callback_port=first.port,
            INTELLIPOST_MERCADOLIBRE_DATABASE_URL=backends.database_url,
            INTELLIPOST_REDIS_URL=REDIS_URL,
            INTELLIPOST_MERCADOLIBRE_REDIS_KEY_PREFIX=prefix,
            settings=extra,
        )
    except Exception:
        first.stop()
        raise
    return [first, second]


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory,
    sandbox: Component,
    issuer: TokenIssuer,
    backends: Backends,
) -> Iterator[list[Component]]:
    replicas = start_pair(tmp_path_factory.mktemp("pair"), sandbox, issuer, backends)
    yield replicas
    for replica in replicas:
        replica.stop()


async def test_with_two_replicas_a_refresh_token_is_spent_exactly_once(
    pair: list[Component], sandbox: Component, issuer: TokenIssuer, backends: Backends
) -> None:
    a, b = pair
    control = SandboxControl(sandbox.url)
    user = "u-refresh"
    token = issuer.token(user, ttl=3600)
    connect(a, token)
    created = httpx.post(
        f"{b.url}{API}/listings",
        json=listing(),
        headers={**auth(token), "Idempotency-Key": "refresh-once"},
        timeout=60,
    )
    assert created.status_code == 201, created.text
    item_id = created.json()["item_id"]
    cipher = TokenCipher(DEV_KEY)
    before = await connection_row(backends.database_url, user)
    old_refresh = cipher.decrypt(before["refresh_token"], context=f"{user}:refresh")
    # Time passes: the access token is now inside the refresh margin on both replicas.
    await execute(
        backends.database_url,
        "UPDATE connections SET access_expires_at = :at WHERE user_id = :u",
        at=datetime.now(UTC) + timedelta(seconds=20),
        u=user,
    )
    control.reset()

    async with httpx.AsyncClient(timeout=60) as client:
        responses = await asyncio.gather(
            *(
                client.get(f"{replica.url}{API}/listings/{item_id}", headers=auth(token))
                for _ in range(10)
                for replica in (a, b)
            )
        )
    assert [r.status_code for r in responses] == [200] * 20
    stats = control.stats()
    assert stats["grants"] == {"refresh_token": 1}
    assert stats["grant_failures"] == {}
    after = await connection_row(backends.database_url, user)
    assert after["access_expires_at"] > datetime.now(UTC) + timedelta(hours=5)
    new_refresh = cipher.decrypt(after["refresh_token"], context=f"{user}:refresh")
    assert new_refresh != old_refresh
    assert after["refreshed_at"] is not None


def test_a_429_from_mercadolibre_pauses_every_replica(
    pair: list[Component], sandbox: Component, issuer: TokenIssuer
) -> None:
    """Last test on this pair: it leaves the fleet's budget paused for a few seconds."""
    a, b = pair
    control = SandboxControl(sandbox.url)
    token = issuer.token("u-pause", ttl=3600)
    connect(a, token)
    created = httpx.post(
        f"{a.url}{API}/listings",
        json=listing(),
        headers={**auth(token), "Idempotency-Key": "pause"},
        timeout=60,
    )
    item_id = created.json()["item_id"]
    control.reset()
    control.faults(fail_next=1, fail_status=429, retry_after=12, route="GET /items/{item_id}")
    first = httpx.get(f"{a.url}{API}/listings/{item_id}", headers=auth(token), timeout=60)
    assert first.status_code == 429
    assert 8 <= int(first.headers["retry-after"]) <= 12
    # Replica B honours the pause A learned about: its call never reaches MercadoLibre.
    second = httpx.get(f"{b.url}{API}/listings/{item_id}", headers=auth(token), timeout=60)
    assert second.status_code == 429
    assert second.json()["type"].endswith("/mercadolibre-rate-limited")
    assert control.calls("GET /items/{item_id}") == 1


async def test_a_burst_of_250_calls_with_a_limit_of_200_per_minute_lets_at_most_200_through(
    tmp_path: Path, sandbox: Component, issuer: TokenIssuer, backends: Backends
) -> None:
    control = SandboxControl(sandbox.url)
    control.reset()
    replicas = start_pair(
        tmp_path,
        sandbox,
        issuer,
        backends,
        INTELLIPOST_MERCADOLIBRE_REQUESTS_PER_MINUTE="200",
        INTELLIPOST_MERCADOLIBRE_BURST_LIMIT="200",
        INTELLIPOST_MERCADOLIBRE_RATE_LIMIT_MAX_WAIT_SECONDS="0",
    )
    try:
        token = issuer.token("u-burst", ttl=3600)
        connect(replicas[0], token)
        created = httpx.post(
            f"{replicas[1].url}{API}/listings",
            json=listing(),
            headers={**auth(token), "Idempotency-Key": "burst"},
            timeout=60,
        )
        assert created.status_code == 201, created.text
        item_id = created.json()["item_id"]
        setup_calls = control.stats()["total"]

        limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            responses = await asyncio.gather(
                *(
                    client.get(
                        f"{replicas[i % 2].url}{API}/listings/{item_id}", headers=auth(token)
                    )
                    for i in range(250)
                )
            )
    finally:
        for replica in replicas:
            replica.stop()

    statuses = [r.status_code for r in responses]
    passed = statuses.count(200)
    refused = [r for r in responses if r.status_code == 429]
    assert passed + len(refused) == 250, sorted(set(statuses))
    stats = control.stats()
    # Every call that reached the sandbox went through the one shared budget.
    assert stats["total"] <= 200
    assert stats["calls"]["GET /items/{item_id}"] == passed
    assert stats["total"] == setup_calls + passed
    # The budget was used, not refused wholesale.
    assert passed >= 200 - setup_calls - 5
    for response in refused:
        assert response.json()["type"].endswith("/mercadolibre-rate-limited")
        assert int(response.headers["retry-after"]) >= 1
