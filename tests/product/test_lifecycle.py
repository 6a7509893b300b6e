"""The lifecycle's guarantees at the database: one winner per race, abandoned work recovered."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from intellipost.product.config import ProductConfig
from intellipost.product.models import IdempotencyKey, Product
from intellipost.product.repository import ProductRepository
from intellipost.product.service import PUBLISHABLE
from intellipost.product.storage import LocalStorage, StorageError
from intellipost.product.tasks import INTERRUPTED_BY_RESTART, BackgroundWork
from intellipost.shared.config import ConfigError
from intellipost.shared.db import Database
from intellipost.shared.errors import ProblemError
from tests.product.support import BACKPACK, jpeg, offline_service
from tests.support import REPO, base_env


async def add_product(database: Database, **values: Any) -> str:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "owner_id": "seller",
        "status": "ready",
        "prompt": "Mochila urbana azul 25 litros",
        "site": "MLA",
        "quantity": 1,
        "condition": "new",
        "revision": 1,
        "created_at": now,
        "updated_at": now,
        **values,
    }
    async with database.session() as session:
        session.add(Product(**fields))
        await session.commit()
    return str(fields["id"])


async def read(database: Database, product_id: str) -> Product:
    async with database.session() as session:
        found = await ProductRepository(session).get(product_id)
    assert found is not None
    return found


async def test_of_racing_transitions_from_one_revision_exactly_one_wins(database: Database) -> None:
    product_id = await add_product(database)

    async def publish(attempt: str) -> bool:
        async with database.session() as session:
            moved = await ProductRepository(session).change(
                product_id,
                {"status": "publishing", "attempt_id": attempt},
                statuses=PUBLISHABLE,
                revision=1,
            )
            await session.commit()
            return moved

    attempts = [f"attempt-{i}" for i in range(6)]
    results = await asyncio.gather(*(publish(a) for a in attempts))
    assert results.count(True) == 1
    row = await read(database, product_id)
    assert row.status == "publishing"
    assert row.attempt_id == attempts[results.index(True)]
    assert row.revision == 2


async def test_a_finished_attempt_lands_only_if_it_still_owns_the_product(
    database: Database,
) -> None:
    product_id = await add_product(database, status="processing", attempt_id="old")
    async with database.session() as session:
        repo = ProductRepository(session)
        stale = await repo.change(
            product_id, {"status": "ready"}, statuses=("processing",), attempt_id="other"
        )
        current = await repo.change(
            product_id, {"status": "ready"}, statuses=("processing",), attempt_id="old"
        )
        await session.commit()
    assert (stale, current) == (False, True)


async def test_recovery_fails_only_work_whose_claim_ran_out(database: Database) -> None:
    now = datetime.now(UTC)
    dead_generation = await add_product(
        database, status="processing", worker_id="w-dead", lease_expires_at=now - timedelta(1)
    )
    dead_publication = await add_product(
        database, status="publishing", worker_id="w-dead", lease_expires_at=now - timedelta(1)
    )
    alive = await add_product(
        database, status="processing", worker_id="w-alive", lease_expires_at=now + timedelta(1)
    )
    settled = await add_product(database, status="ready")

    work = BackgroundWork(database, lease_seconds=30, drain_seconds=1)
    assert await work.recover() == 2

    generation, publication = (
        await read(database, dead_generation),
        await read(database, dead_publication),
    )
    assert (generation.status, generation.failed_step) == ("failed", "generation")
    assert (publication.status, publication.failed_step) == ("failed", "publishing")
    assert generation.failure_reason == INTERRUPTED_BY_RESTART
    assert generation.worker_id is None
    assert generation.lease_expires_at is None
    assert (await read(database, alive)).status == "processing"
    assert (await read(database, settled)).status == "ready"


async def test_a_live_worker_keeps_its_claims(database: Database) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1)
    product_id = await add_product(
        database, status="processing", worker_id="w-1", lease_expires_at=soon
    )
    async with database.session() as session:
        renewed = await ProductRepository(session).renew_claims(
            "w-1", datetime.now(UTC) + timedelta(hours=1)
        )
        await session.commit()
    assert renewed == 1
    lease = (await read(database, product_id)).lease_expires_at
    assert lease is not None
    assert lease > soon + timedelta(minutes=30)


# --- settings ---------------------------------------------------------------------------------


def test_production_on_local_storage_needs_no_s3_secret(isolated_env: Path) -> None:
    config = ProductConfig(environment="production")
    assert config.storage_backend == "local"
    assert config.media_path == Path("var") / "media"


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"s3_access_key_id": "AKIA123"}, "INTELLIPOST_PRODUCT_S3_SECRET_ACCESS_KEY go together"),
        (
            {"s3_access_key_id": "minio", "s3_secret_access_key": "minioadmin"},
            "INTELLIPOST_PRODUCT_S3_SECRET_ACCESS_KEY is a development default",
        ),
    ],
)
def test_production_on_s3_refuses_half_or_default_credentials(
    isolated_env: Path, settings: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        ProductConfig(environment="production", storage_backend="s3", **settings)  # type: ignore[arg-type]


def test_production_on_s3_may_use_the_default_credential_chain(isolated_env: Path) -> None:
    config = ProductConfig(environment="production", storage_backend="s3")
    assert config.s3_secret_access_key is None


def test_the_s3_refusal_is_one_clear_line_at_startup(tmp_path: Path) -> None:
    env = base_env(
        tmp_path,
        INTELLIPOST_ENVIRONMENT="production",
        INTELLIPOST_PRODUCT_STORAGE_BACKEND="s3",
        INTELLIPOST_PRODUCT_S3_ACCESS_KEY_ID="minio",
        INTELLIPOST_PRODUCT_S3_SECRET_ACCESS_KEY="minioadmin",
    )
    result = subprocess.run(
        [sys.executable, "-m", "intellipost.product"],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.decode().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr.decode()
    assert "refusing to start" in lines[0]
    assert "INTELLIPOST_PRODUCT_S3_SECRET_ACCESS_KEY" in lines[0]


class FailingStorage(LocalStorage):
    """The local store, failing the write after ``writes_before_failure`` succeeded."""

    def __init__(self, root: Path, writes_before_failure: int) -> None:
        super().__init__(root)
        self.left = writes_before_failure

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        if self.left == 0:
            raise StorageError("disk full")
        self.left -= 1
        await super().put(key, data, content_type)


async def test_a_storage_fault_halfway_leaves_no_product_and_no_files(
    database: Database, isolated_env: Path
) -> None:
    config = ProductConfig(var_dir=isolated_env / "var")
    storage = FailingStorage(isolated_env / "media", writes_before_failure=5)
    work = BackgroundWork(database, lease_seconds=30, drain_seconds=1)
    service = offline_service(config, database, storage, work)

    with pytest.raises(ProblemError) as caught:
        await service.create("seller", BACKPACK, [jpeg(), jpeg(600, 700)], "key-1")

    assert caught.value.status == 503
    assert storage.left == 0  # five files were written before the fault...
    assert [p for p in (isolated_env / "media").rglob("*") if p.is_file()] == []  # ...and removed
    async with database.session() as session:
        assert await ProductRepository(session).page("seller", limit=10) == []
        assert await ProductRepository(session).key("seller", "key-1") is None
    assert work.in_flight == 0


async def test_an_idempotency_key_is_forgotten_after_its_time_to_live(
    database: Database, isolated_env: Path
) -> None:
    now = [datetime.now(UTC)]
    config = ProductConfig(var_dir=isolated_env / "var", idempotency_key_ttl_hours=24)
    work = BackgroundWork(database, lease_seconds=30, drain_seconds=5, clock=lambda: now[0])
    service = offline_service(
        config, database, LocalStorage(isolated_env / "media"), work, clock=lambda: now[0]
    )
    try:
        first, replayed = await service.create("seller", BACKPACK, [jpeg()], "key-1")
        assert not replayed
        now[0] += timedelta(hours=23)
        again, replayed = await service.create("seller", BACKPACK, [jpeg()], "key-1")
        assert (again.id, replayed) == (first.id, True)

        now[0] += timedelta(hours=2)  # 25 hours after the first request
        later, replayed = await service.create("seller", BACKPACK, [jpeg()], "key-1")
        assert not replayed
        assert later.id != first.id

        # The purge forgets keys past their time to live, and only those.
        other, _ = await service.create("seller", BACKPACK, [jpeg()], "key-2")
        now[0] += timedelta(hours=24, seconds=1)  # key-1 (renewed) is now expired
        await add_key_at(database, "key-3", other.id, now[0])
        assert await service.purge_expired_keys() == 2
        async with database.session() as session:
            repo = ProductRepository(session)
            assert await repo.key("seller", "key-1") is None
            assert await repo.key("seller", "key-2") is None
            assert await repo.key("seller", "key-3") is not None
    finally:
        await work.stop()


async def add_key_at(database: Database, key: str, product_id: str, at: datetime) -> None:
    async with database.session() as session:
        await ProductRepository(session).add_key(
            IdempotencyKey(
                id=str(uuid.uuid4()),
                owner_id="seller",
                key=key,
                fingerprint="f" * 64,
                product_id=product_id,
                created_at=at,
            )
        )
        await session.commit()


async def test_housekeeping_repeats_after_a_failed_round_and_ends_with_stop(
    database: Database,
) -> None:
    rounds: list[int] = []

    async def job() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise OSError("storage briefly away")

    work = BackgroundWork(database, lease_seconds=30, drain_seconds=1)
    await work.start()
    work.every("test-job", 0.01, job, first_after_seconds=0)
    for _ in range(200):
        if len(rounds) >= 3:
            break
        await asyncio.sleep(0.01)
    await work.stop()
    assert len(rounds) >= 3  # the failed first round did not end the job
    settled = len(rounds)
    await asyncio.sleep(0.05)
    assert len(rounds) == settled
