"""Helpers for tests that run the MercadoLibre sandbox as a real process."""

from __future__ import annotations

import base64
import hashlib
import secrets
import struct
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from tests.support import Component, base_env, free_port

CLIENT_ID = "intellipost-dev"
CLIENT_SECRET = "sandbox-dev-secret"


def png(width: int = 600, height: int = 600, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A real PNG of one colour (the sandbox reads its size from the bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def jpeg_header(width: int = 800, height: int = 600) -> bytes:
    """The first bytes of a baseline JPEG (SOI, APP0, SOF0): enough to be recognised."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def start_sandbox(tmp: Path, **env: str) -> Component:
    port = free_port()
    extra = {"INTELLIPOST_SANDBOX_PUBLIC_URL": f"http://127.0.0.1:{port}", **env}
    return Component("sandbox", port, base_env(tmp, **extra), tmp / "sandbox.log").start()


class SandboxControl:
    """The sandbox's own switches and counters (`/_sandbox/*`)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def reset(self) -> None:
        httpx.post(self.url + "/_sandbox/reset", timeout=10).raise_for_status()

    def faults(self, **switches: Any) -> dict[str, Any]:
        response = httpx.post(self.url + "/_sandbox/faults", json=switches, timeout=10)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def stats(self) -> dict[str, Any]:
        response = httpx.get(self.url + "/_sandbox/stats", timeout=10)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def calls(self, route: str) -> int:
        return int(self.stats()["calls"].get(route, 0))


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def approve(authorization_url: str, **extra: str) -> str:
    """Approve at the sandbox without the page (``approve=1``); the redirect's Location."""
    query = urlencode({"approve": "1", **extra})
    response = httpx.get(f"{authorization_url}&{query}", timeout=10)
    assert response.status_code == 302, response.text
    return response.headers["location"]
