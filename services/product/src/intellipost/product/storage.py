"""Where image files live: a local directory by default, any S3-compatible store when set."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from intellipost.product.config import ProductConfig

# Keys are made by this service from ids it generated (never from a client's file name);
# the pattern is a second line of defence for the local directory.
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
_S3_DELETE_BATCH = 1000
_S3_LIST_PAGE = 1000


class StorageError(Exception):
    """The store failed or could not be reached."""


class MissingObjectError(StorageError):
    """No object under that key."""


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    modified: datetime


class Storage(Protocol):
    backend: str

    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def get(self, key: str) -> bytes: ...

    async def delete(self, keys: Sequence[str]) -> None:
        """Removes the objects; keys that are already gone are not an error."""
        ...

    def objects(self, prefix: str) -> AsyncIterator[StoredObject]:
        """Every object under ``prefix``, in key order."""
        ...

    async def ping(self) -> str: ...

    def close(self) -> None: ...


def image_key(product_id: str, image_id: str, rendition: str, extension: str) -> str:
    return f"products/{product_id}/{image_id}/{rendition}.{extension}"


def _checked(key: str) -> str:
    if not _KEY.fullmatch(key) or ".." in key:
        raise ValueError(f"not a storage key: {key!r}")
    return key


class LocalStorage:
    """Files under one directory; each write lands whole (temporary file, then rename)."""

    backend = "local"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / _checked(key)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._write, self._path(key), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StorageError(f"could not write to the media directory ({exc.strerror})") from exc

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise MissingObjectError(key) from exc
        except OSError as exc:
            raise StorageError(f"could not read from the media directory ({exc.strerror})") from exc

    async def delete(self, keys: Sequence[str]) -> None:
        paths = [self._path(key) for key in keys]
        await asyncio.to_thread(self._remove, paths)

    def _remove(self, paths: list[Path]) -> None:
        try:
            for path in paths:
                path.unlink(missing_ok=True)
            # Empty directories of deleted images and products go too.
            for parent in sorted(
                {p.parent for p in paths}, key=lambda p: len(p.parts), reverse=True
            ):
                self._prune(parent)
        except OSError as exc:
            raise StorageError(
                f"could not remove files of the media directory ({exc.strerror})"
            ) from exc

    def _prune(self, directory: Path) -> None:
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:  # not empty: another image or product still lives there
                return
            directory = directory.parent

    async def objects(self, prefix: str) -> AsyncIterator[StoredObject]:
        for stored in await asyncio.to_thread(self._walk, prefix):
            yield stored

    def _walk(self, prefix: str) -> list[StoredObject]:
        found = []
        try:
            for directory, _, files in os.walk(self.root):
                for name in files:
                    path = Path(directory, name)
                    key = path.relative_to(self.root).as_posix()
                    # Temporary files of writes in flight are not objects yet.
                    if key.startswith(prefix) and _KEY.fullmatch(key):
                        modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
                        found.append(StoredObject(key, modified))
        except OSError as exc:
            raise StorageError(f"could not list the media directory ({exc.strerror})") from exc
        return sorted(found, key=lambda stored: stored.key)

    async def ping(self) -> str:
        writable = await asyncio.to_thread(os.access, self.root, os.W_OK)
        if not writable:
            raise StorageError(f"{self.root} is not writable")
        return f"local {self.root}"

    def close(self) -> None:
        pass


class S3Storage:
    """An S3-compatible bucket (AWS, MinIO, ...); boto3's blocking calls run in threads."""

    backend = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        region: str,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        self.bucket = bucket
        self._client: Any = boto3.client(
            "s3",
            region_name=region,
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=BotoConfig(
                connect_timeout=3,
                read_timeout=15,
                retries={"max_attempts": 3, "mode": "standard"},
                # Path-style addressing works with every S3-compatible server.
                s3={"addressing_style": "path"},
            ),
        )

    async def _call(self, operation: str, **params: Any) -> Any:
        try:
            return await asyncio.to_thread(getattr(self._client, operation), **params)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            # A missing bucket is a broken store, not a missing object.
            if code == "NoSuchKey" or (operation == "get_object" and code in {"404", "NotFound"}):
                raise MissingObjectError(params.get("Key", "")) from exc
            raise StorageError(f"S3 {operation} failed ({code or 'error'})") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 {operation} failed ({type(exc).__name__})") from exc

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self._call(
            "put_object", Bucket=self.bucket, Key=_checked(key), Body=data, ContentType=content_type
        )

    async def get(self, key: str) -> bytes:
        answer = await self._call("get_object", Bucket=self.bucket, Key=_checked(key))
        body = answer["Body"]
        try:
            data: bytes = await asyncio.to_thread(body.read)
        except BotoCoreError as exc:
            raise StorageError(f"S3 get_object failed ({type(exc).__name__})") from exc
        finally:
            body.close()
        return data

    async def delete(self, keys: Sequence[str]) -> None:
        checked = [_checked(key) for key in keys]
        for start in range(0, len(checked), _S3_DELETE_BATCH):
            batch = checked[start : start + _S3_DELETE_BATCH]
            answer = await self._call(
                "delete_objects",
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
            )
            errors = answer.get("Errors") or []
            if errors:
                raise StorageError(f"S3 could not delete {len(errors)} object(s)")

    async def objects(self, prefix: str) -> AsyncIterator[StoredObject]:
        page: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": _S3_LIST_PAGE}
        while True:
            answer = await self._call("list_objects_v2", **page)
            for item in answer.get("Contents") or []:
                yield StoredObject(item["Key"], item["LastModified"])
            if not answer.get("IsTruncated"):
                return
            page["ContinuationToken"] = answer["NextContinuationToken"]

    async def ping(self) -> str:
        await self._call("head_bucket", Bucket=self.bucket)
        return f"s3 bucket {self.bucket}"

    def close(self) -> None:
        self._client.close()


def create_storage(config: ProductConfig) -> Storage:
    if config.storage_backend == "s3":
        secret = config.s3_secret_access_key
        return S3Storage(
            bucket=config.s3_bucket,
            region=config.s3_region,
            endpoint_url=config.s3_endpoint_url,
            access_key_id=config.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret else None,
        )
    return LocalStorage(config.media_path)
