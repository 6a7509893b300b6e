"""Helpers for the product tests: real image files of every kind, uploads, waiting on status."""

from __future__ import annotations

import io
import os
import struct
import time
import zlib
from collections.abc import Callable
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from intellipost.product.clients import AiContentClient, MercadoLibreClient
from intellipost.product.config import ProductConfig
from intellipost.product.service import NewProduct, ProductService
from intellipost.product.storage import Storage
from intellipost.product.tasks import BackgroundWork, utcnow
from intellipost.shared.db import Database
from tests.support import REPO, free_port

API = "/api/v1/products"
SAMPLES = REPO / "samples" / "photos"
PROMPT = "Zapatillas running Topper Boost Run hombre talle 42 color rojo, nuevas en caja"
GPS_IFD = 0x8825
ORIENTATION = 0x0112


# A product a seller might create; its fields pass every check.
BACKPACK = NewProduct("Mochila urbana azul 25 litros", None, 1, "new", "MLA")


def offline_service(
    config: ProductConfig,
    database: Database,
    storage: Storage,
    work: BackgroundWork,
    clock: Callable[[], datetime] = utcnow,
) -> ProductService:
    """The service in-process, its AI content and MercadoLibre peers unreachable."""
    unused = f"http://127.0.0.1:{free_port()}"
    return ProductService(
        config,
        database,
        storage,
        work,
        AiContentClient(unused, 1),
        MercadoLibreClient(unused, 1),
        clock=clock,
    )


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def jpeg(
    width: int = 640,
    height: int = 640,
    rgb: tuple[int, int, int] = (200, 30, 30),
    *,
    exif: Image.Exif | None = None,
    comment: bytes | None = None,
) -> bytes:
    image = Image.new("RGB", (width, height), rgb)
    # A second colour in one corner, so orientation can be told from the pixels.
    image.paste((20, 20, 200), (0, 0, width // 4, height // 4))
    out = io.BytesIO()
    options: dict[str, Any] = {"quality": 90}
    if exif is not None:
        options["exif"] = exif.tobytes()
    if comment is not None:
        options["comment"] = comment
    image.save(out, "JPEG", **options)
    return out.getvalue()


def png(
    width: int = 640,
    height: int = 640,
    rgba: tuple[int, ...] = (30, 160, 60),
    *,
    text: dict[str, str] | None = None,
) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    mode = "RGBA" if len(rgba) == 4 else "RGB"
    image = Image.new(mode, (width, height), rgba)
    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    out = io.BytesIO()
    image.save(out, "PNG", pnginfo=info)
    return out.getvalue()


def webp(width: int = 640, height: int = 640, rgba: tuple[int, ...] = (240, 140, 20)) -> bytes:
    mode = "RGBA" if len(rgba) == 4 else "RGB"
    out = io.BytesIO()
    Image.new(mode, (width, height), rgba).save(out, "WEBP", quality=90)
    return out.getvalue()


def gps_exif(orientation: int | None = None) -> Image.Exif:
    """EXIF with a GPS position (Buenos Aires) and a camera, as a phone writes it."""
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "PhoneModel X"  # Model
    if orientation is not None:
        exif[ORIENTATION] = orientation
    gps = exif.get_ifd(GPS_IFD)
    gps[1] = "S"  # GPSLatitudeRef
    gps[2] = (34.0, 36.0, 12.0)  # GPSLatitude
    gps[3] = "W"  # GPSLongitudeRef
    gps[4] = (58.0, 22.0, 54.0)  # GPSLongitude
    return exif


def truncated_jpeg() -> bytes:
    whole = jpeg(900, 900)
    # Keep the headers and part of the scan: a download cut off halfway.
    return whole[: len(whole) // 2]


@cache
def pixel_bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A 1-bit PNG of width x height pixels that is only a few kilobytes on disk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    packer = zlib.compressobj(9)
    compressed = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", compressed)
        + chunk(b"IEND", b"")
    )


def noise_png(megabytes: float = 11.0) -> bytes:
    """A valid PNG of random pixels (incompressible), at least ``megabytes`` large."""
    side = int((megabytes * 1_048_576 / 3) ** 0.5) + 8
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=0)
    return out.getvalue()


def sample_photos() -> list[tuple[str, bytes]]:
    return [(path.name, path.read_bytes()) for path in sorted(SAMPLES.iterdir())]


def files(*images: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    """Multipart parts named `images`; the declared type is always a lie on purpose."""
    return [("images", (name, data, "application/octet-stream")) for name, data in images]


def create(
    base_url: str,
    token: str,
    images: list[tuple[str, bytes]],
    *,
    prompt: str = PROMPT,
    key: str | None = None,
    correlation_id: str | None = None,
    traceparent: str | None = None,
    **fields: str,
) -> httpx.Response:
    headers = auth(token)
    if key is not None:
        headers["Idempotency-Key"] = key
    if correlation_id is not None:
        headers["X-Correlation-ID"] = correlation_id
    if traceparent is not None:
        headers["traceparent"] = traceparent
    return httpx.post(
        f"{base_url}{API}",
        data={"prompt_text": prompt, **fields},
        files=files(*images),
        headers=headers,
        timeout=60,
    )


def wait_for_status(
    base_url: str, token: str, product_id: str, *, leaving: str, timeout: float = 30.0
) -> dict[str, Any]:
    """The product once it is no longer in ``leaving``."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{base_url}{API}/{product_id}", headers=auth(token), timeout=10)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] != leaving or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def stored_files(media: Path) -> list[Path]:
    return [p for p in media.rglob("*") if p.is_file()] if media.exists() else []
