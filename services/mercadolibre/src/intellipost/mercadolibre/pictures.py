"""Getting a listing's pictures as bytes: decoded from base64 or fetched from allowed origins."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from intellipost.mercadolibre.schemas import PictureIn
from intellipost.shared.errors import ProblemError
from intellipost.shared.http import get_service_client

# MercadoLibre takes JPG/JPEG and PNG; the bytes decide, not a file name.
_SIGNATURES = ((b"\xff\xd8\xff", "image/jpeg", "jpg"), (b"\x89PNG\r\n\x1a\n", "image/png", "png"))


@dataclass(frozen=True, slots=True)
class PictureData:
    content: bytes
    content_type: str
    filename: str


def _invalid(index: int, detail: str) -> ProblemError:
    return ProblemError(
        422,
        f"Picture {index + 1}: {detail}",
        title="Invalid picture",
        slug="invalid-picture",
        errors=[
            {
                "loc": ["body", "pictures", str(index)],
                "field": f"pictures.{index}",
                "message": detail,
                "type": "picture",
            }
        ],
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class PictureLoader:
    def __init__(self, *, allowed_origins: list[str], max_bytes: int) -> None:
        self.allowed_origins = {origin.lower().rstrip("/") for origin in allowed_origins}
        self.max_bytes = max_bytes

    async def load(self, pictures: list[PictureIn]) -> list[PictureData]:
        return [await self._one(i, picture) for i, picture in enumerate(pictures)]

    async def _one(self, index: int, picture: PictureIn) -> PictureData:
        if picture.data is not None:
            content = picture.data
        else:
            assert picture.url is not None
            content = await self._fetch(index, picture.url)
        if len(content) > self.max_bytes:
            raise _invalid(index, f"larger than {self.max_bytes // 1_048_576} MB")
        for signature, content_type, ext in _SIGNATURES:
            if content.startswith(signature):
                return PictureData(
                    content, content_type, picture.filename or f"picture{index + 1}.{ext}"
                )
        raise _invalid(index, "not a JPEG or PNG image")

    async def _fetch(self, index: int, url: str) -> bytes:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or _origin(url) not in self.allowed_origins:
            # The caller's token goes with the request, so only known origins are fetched.
            raise _invalid(index, "URL is not on an allowed picture origin")
        try:
            # The shared client forwards the caller's Authorization and correlation id.
            response = await get_service_client().get(url)
        except httpx.HTTPError as exc:
            raise ProblemError(
                502,
                f"Picture {index + 1} could not be fetched ({type(exc).__name__}).",
                title="Picture source unavailable",
                slug="upstream-unavailable",
            ) from exc
        if response.status_code != 200:
            raise _invalid(index, f"fetching it answered {response.status_code}")
        return response.content
