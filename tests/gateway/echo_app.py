"""A raw ASGI upstream for gateway tests: echoes what it received, streams, stalls on demand."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import Receive, Scope, Send


async def _read_body(receive: Receive) -> tuple[bytes, int]:
    chunks = []
    messages = 0
    while True:
        message = await receive()
        messages += 1
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks), messages


async def _json(
    send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    if headers is None:
        headers = []
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path: str = scope["path"]
    if path == "/health/ready" or path == "/health/live":
        await _json(send, 200, {"status": "ready"})
        return
    if path == "/info":
        await _json(
            send, 200, {"name": "echo", "version": "test", "environment": "test", "uptime_s": 1}
        )
        return
    if path.endswith("/slow"):
        await asyncio.sleep(float(dict(_query(scope)).get("seconds", "5")))
        await _json(send, 200, {"slow": True})
        return
    if path.endswith("/stream"):
        parts = int(dict(_query(scope)).get("parts", "5"))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        for i in range(parts):
            await send(
                {
                    "type": "http.response.body",
                    "body": f"part-{i}\n".encode() * 20000,
                    "more_body": True,
                }
            )
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
        return
    body, messages = await _read_body(receive)
    await _json(
        send,
        200,
        {
            "method": scope["method"],
            "path": path,
            "raw_path": scope.get("raw_path", b"").decode("latin-1"),
            "query": scope["query_string"].decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "body_length": len(body),
            "body_sha": __import__("hashlib").sha256(body).hexdigest(),
            "body_messages": messages,
        },
        headers=[
            (b"x-upstream", b"echo"),
            (b"connection", b"keep-alive"),
            (b"keep-alive", b"timeout=5"),
        ],
    )


def _query(scope: Scope) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(scope["query_string"].decode())
