"""Pure ASGI guard that refuses request bodies above a size, declared or streamed."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from intellipost.shared.errors import PROBLEM_MEDIA_TYPE, problem_body, problem_type
from intellipost.shared.logging import get_structured_logger

log = get_structured_logger("shared.limits")
_HTTP1 = ("1.1", "1.0")


class BodyTooLargeError(Exception):
    pass


class MaxBodySizeMiddleware:
    """413 problem+json for a body over ``max_bytes``, before the app reads it all.

    A declared ``Content-Length`` over the limit is refused at once; a chunked body is
    counted as it streams and cut off at the limit.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._refuse(scope, send, 400, "Content-Length is not a number.")
                    return
                if declared > self.max_bytes:
                    await self._refuse(scope, send, 413, self._too_large())
                    return
            elif name == b"transfer-encoding":
                chunked = True
        if not chunked and (declared is not None or scope.get("http_version") in _HTTP1):
            # The HTTP/1.x server delivers exactly the declared length, and no body at all
            # without one: nothing to count (most requests are GETs).
            await self.app(scope, receive, send)
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLargeError:
            if started:
                raise
            await self._refuse(scope, send, 413, self._too_large())

    def _too_large(self) -> str:
        return f"The request body is larger than the {self.max_bytes} bytes this endpoint accepts."

    async def _refuse(self, scope: Scope, send: Send, status: int, detail: str) -> None:
        log.security_event(
            "oversize_request" if status == 413 else "malformed_request",
            "medium",
            path=scope["path"],
            limit_bytes=self.max_bytes,
        )
        body = orjson.dumps(
            problem_body(
                status,
                detail=detail,
                type_=problem_type("request-too-large" if status == 413 else "bad-request"),
                instance=scope["path"],
            )
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
