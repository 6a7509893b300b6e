"""The storage interface: a local directory, and S3 as moto's server speaks it over HTTP."""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer
from PIL import Image

from intellipost.product.config import ProductConfig
from intellipost.product.storage import (
    LocalStorage,
    MissingObjectError,
    S3Storage,
    Storage,
    StorageError,
    image_key,
)
from intellipost.product.tasks import BackgroundWork
from intellipost.shared.db import Database
from tests.product.support import API, BACKPACK, auth, create, jpeg, offline_service
from tests.support import Component, TokenIssuer, base_env, free_port

BUCKET = "intellipost-test-media"
CREDENTIALS = {"access_key_id": "test-key-id", "secret_access_key": "test-secret"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto in server mode: a real S3 HTTP endpoint on a free port, with one bucket."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    s3_client(endpoint).create_bucket(Bucket=BUCKET)
    try:
        yield endpoint
    finally:
        server.stop()


@pytest.fixture(params=["local", "s3"])
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path, s3_endpoint: str
) -> AsyncIterator[Storage]:
    """An empty store of the test's own (the sweep looks at every product's files)."""
    made: Storage
    if request.param == "local":
        made = LocalStorage(tmp_path / "media")
    else:
        bucket = f"test-{uuid.uuid4().hex[:12]}"
        s3_client(s3_endpoint).create_bucket(Bucket=bucket)
        made = S3Storage(bucket=bucket, region="us-east-1", endpoint_url=s3_endpoint, **CREDENTIALS)
    try:
        yield made
    finally:
        made.close()


def keys(product: str, *images: str) -> list[str]:
    return [image_key(product, image, "original", "jpg") for image in images]


async def test_what_is_put_is_got_back_and_gone_after_delete(storage: Storage) -> None:
    first, second = keys("p1", "i1", "i2")
    await storage.put(first, b"\xff\xd8\xffone", "image/jpeg")
    await storage.put(second, b"\xff\xd8\xfftwo", "image/jpeg")
    assert await storage.get(first) == b"\xff\xd8\xffone"

    await storage.delete([first])
    with pytest.raises(MissingObjectError):
        await storage.get(first)
    assert await storage.get(second) == b"\xff\xd8\xfftwo"
    await storage.delete([first, second])  # an already-deleted key is no error
    with pytest.raises(MissingObjectError):
        await storage.get(second)


async def test_a_second_put_replaces_the_object(storage: Storage) -> None:
    (key,) = keys("p2", "i1")
    await storage.put(key, b"old", "image/jpeg")
    await storage.put(key, b"new", "image/jpeg")
    assert await storage.get(key) == b"new"


@pytest.mark.parametrize("key", ["../escape.jpg", "products/../../etc/passwd", "/abs.jpg", ""])
async def test_keys_that_could_leave_the_store_are_refused(storage: Storage, key: str) -> None:
    with pytest.raises(ValueError, match="not a storage key"):
        await storage.put(key, b"x", "image/jpeg")


async def test_ping_names_the_backend(storage: Storage) -> None:
    assert (await storage.ping()).startswith(storage.backend)


async def test_local_delete_leaves_no_empty_directories(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "media")
    a, b = keys("p3", "i1", "i2")
    await storage.put(a, b"a", "image/jpeg")
    await storage.put(b, b"b", "image/jpeg")
    await storage.delete([a])
    assert (tmp_path / "media" / "products" / "p3" / "i2").is_dir()
    await storage.delete([b])
    assert list((tmp_path / "media").iterdir()) == []


async def test_an_unreachable_s3_endpoint_is_a_storage_error() -> None:
    storage = S3Storage(
        bucket=BUCKET,
        region="us-east-1",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        **CREDENTIALS,
    )
    try:
        with pytest.raises(StorageError) as caught:
            await storage.put(keys("p4", "i1")[0], b"x", "image/jpeg")
        assert not isinstance(caught.value, MissingObjectError)
        with pytest.raises(StorageError):
            await storage.ping()
    finally:
        storage.close()


async def test_a_missing_bucket_is_a_storage_error_not_a_missing_object(s3_endpoint: str) -> None:
    storage = S3Storage(
        bucket="no-such-bucket", region="us-east-1", endpoint_url=s3_endpoint, **CREDENTIALS
    )
    try:
        with pytest.raises(StorageError) as caught:
            await storage.ping()
        assert not isinstance(caught.value, MissingObjectError)
    finally:
        storage.close()


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["access_key_id"],
        aws_secret_access_key=CREDENTIALS["secret_access_key"],
    )


def s3_objects(endpoint: str, prefix: str = "") -> list[dict[str, Any]]:
    answer = s3_client(endpoint).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return list(answer.get("Contents", []))


def test_the_service_keeps_its_images_in_s3_when_configured(
    tmp_path: Path, s3_endpoint: str
) -> None:
    issuer = TokenIssuer().serve()
    env = base_env(
        tmp_path,
        INTELLIPOST_JWKS_URL=issuer.jwks_url,
        INTELLIPOST_PRODUCT_AI_CONTENT_URL=f"http://127.0.0.1:{free_port()}",
        INTELLIPOST_PRODUCT_STORAGE_BACKEND="s3",
        INTELLIPOST_PRODUCT_S3_ENDPOINT_URL=s3_endpoint,
        INTELLIPOST_PRODUCT_S3_BUCKET=BUCKET,
        INTELLIPOST_PRODUCT_S3_ACCESS_KEY_ID=CREDENTIALS["access_key_id"],
        INTELLIPOST_PRODUCT_S3_SECRET_ACCESS_KEY=CREDENTIALS["secret_access_key"],
    )
    service = Component("product", free_port(), env, tmp_path / "product.log")
    token = issuer.token("s3-seller")
    try:
        service.start(wait="/health/ready")
        health = httpx.get(service.url + "/health", timeout=10).json()
        assert health["checks"]["storage"]["detail"] == f"s3 bucket {BUCKET}"

        before = s3_objects(s3_endpoint)
        refused = create(service.url, token, [("a.jpg", jpeg()), ("b.png", b"text")])
        assert refused.status_code == 422
        assert s3_objects(s3_endpoint) == before

        product = create(service.url, token, [("a.jpg", jpeg(800, 600))]).json()
        prefix = f"products/{product['id']}/"
        stored = {o["Key"] for o in s3_objects(s3_endpoint, prefix)}
        assert len(stored) == 4
        image = product["images"][0]
        served = httpx.get(service.url + image["urls"]["original"], headers=auth(token))
        assert served.status_code == 200
        assert Image.open(io.BytesIO(served.content)).size == (800, 600)

        deleted = httpx.delete(f"{service.url}{API}/{product['id']}", headers=auth(token))
        assert deleted.status_code == 204
        assert s3_objects(s3_endpoint, prefix) == []
    finally:
        service.stop()
        issuer.close()


async def test_objects_are_listed_under_their_prefix_in_key_order(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("intellipost.product.storage._S3_LIST_PAGE", 2)  # S3 answers in pages
    prefix = f"products/list-{uuid.uuid4().hex[:8]}/"
    wanted = sorted(f"{prefix}{image}/{size}.jpg" for image in "bac" for size in ("300", "600"))
    for key in reversed(wanted):
        await storage.put(key, b"x", "image/jpeg")
    await storage.put("products/elsewhere/i1/300.jpg", b"x", "image/jpeg")
    began = datetime.now(UTC) - timedelta(minutes=1)

    listed = [stored async for stored in storage.objects(prefix)]

    assert [stored.key for stored in listed] == wanted
    assert all(began <= stored.modified <= datetime.now(UTC) for stored in listed)


async def test_the_sweep_removes_old_files_no_image_refers_to_and_nothing_else(
    database: Database, storage: Storage, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("intellipost.product.service.SWEEP_BATCH", 2)  # several lookups
    now = [datetime.now(UTC)]
    work = BackgroundWork(database, lease_seconds=30, drain_seconds=5, clock=lambda: now[0])
    config = ProductConfig(var_dir=isolated_env / "var")
    service = offline_service(config, database, storage, work, clock=lambda: now[0])
    try:
        kept, _ = await service.create("seller", BACKPACK, [jpeg(), jpeg(600, 700)], None)
        kept_files = [key for image in kept.images for key in image.variants.values()]
        # What a crash between storing and committing leaves: files of images with no row.
        ghost = uuid.uuid4().hex
        orphans = [image_key(ghost, f"img-{i}", size, "jpg") for i in range(3) for size in "ab"]
        for key in orphans:
            await storage.put(key, b"x", "image/jpeg")
        everything = sorted([*kept_files, *orphans])
        grace = timedelta(hours=1)

        # Young files may belong to a create still in flight: left alone.
        assert await service.sweep_orphan_files(grace) == 0
        assert [s.key async for s in storage.objects("products/")] == everything

        now[0] += timedelta(hours=2)
        assert await service.sweep_orphan_files(grace) == len(orphans)
        assert [s.key async for s in storage.objects("products/")] == sorted(kept_files)
        for key in kept_files:
            assert await storage.get(key)
        assert await service.sweep_orphan_files(grace) == 0
    finally:
        await work.stop()


def test_the_running_service_sweeps_orphan_files_on_its_own(tmp_path: Path) -> None:
    issuer = TokenIssuer().serve()
    media = tmp_path / "media"
    env = base_env(
        tmp_path,
        INTELLIPOST_JWKS_URL=issuer.jwks_url,
        INTELLIPOST_PRODUCT_AI_CONTENT_URL=f"http://127.0.0.1:{free_port()}",
        INTELLIPOST_PRODUCT_MEDIA_DIR=str(media),
        INTELLIPOST_PRODUCT_ORPHAN_SWEEP_MINUTES="0.01",
        INTELLIPOST_PRODUCT_ORPHAN_GRACE_MINUTES="1",
    )
    service = Component("product", free_port(), env, tmp_path / "product.log")
    token = issuer.token("sweep-seller")
    try:
        service.start(wait="/health/ready")
        product = create(service.url, token, [("a.jpg", jpeg())]).json()
        orphan = media / "products" / "ghost" / "img" / "original.jpg"
        orphan.parent.mkdir(parents=True)
        orphan.write_bytes(b"left by a crash")
        stored = [p for p in media.rglob("*") if p.is_file()]
        an_hour_ago = time.time() - 3600
        for path in stored:
            os.utime(path, (an_hour_ago, an_hour_ago))

        swept = service.wait_for_log(lambda r: r.get("message") == "orphan image files removed")

        assert swept, service.output()[-3000:]
        assert (swept[0]["files"], swept[0]["images"]) == (1, 1)
        assert not orphan.exists()
        assert not (media / "products" / "ghost").exists()
        left = sorted(p for p in media.rglob("*") if p.is_file())
        assert left == sorted(p for p in stored if p != orphan)
        assert all(f"products/{product['id']}/" in str(p) for p in left)
    finally:
        service.stop()
        issuer.close()
