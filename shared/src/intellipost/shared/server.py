"""Runs a component under uvicorn (uvloop, httptools) with a graceful, observable shutdown."""

from __future__ import annotations

import asyncio
import contextvars
from types import FrameType

import uvicorn

from intellipost.shared.config import BaseModuleConfig
from intellipost.shared.health import shutdown_state


class GracefulServer(uvicorn.Server):
    """On SIGTERM, readiness turns 503 first; draining starts after ``shutdown_delay``.

    The delay gives load balancers time to see the instance leave rotation before its
    listener closes (Kubernetes does the same with a preStop pause).
    """

    def __init__(self, config: uvicorn.Config, shutdown_delay_seconds: float) -> None:
        super().__init__(config)
        self.shutdown_delay_seconds = shutdown_delay_seconds
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)  # type: ignore[arg-type]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        already = shutdown_state.shutting_down
        # The handler runs in whatever context the signal interrupted (often a request's):
        # an empty one keeps that request's ids off the shutdown log line.
        contextvars.Context().run(shutdown_state.begin)
        if already or self.shutdown_delay_seconds <= 0 or self._loop is None:
            super().handle_exit(sig, frame)
            return
        self._loop.call_later(self.shutdown_delay_seconds, super().handle_exit, sig, frame)


def serve(app: str, config: BaseModuleConfig) -> None:
    """``app`` is an import string (``intellipost.user.main:app``)."""
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        # Logging is configured by the app itself: no uvicorn handlers, no access log.
        log_config=None,
        access_log=False,
        server_header=False,
        # X-Forwarded-* are handled explicitly (the gateway sets them; nothing trusts a client).
        proxy_headers=False,
        timeout_graceful_shutdown=int(config.graceful_timeout_seconds),
        timeout_keep_alive=75,
    )
    GracefulServer(uv_config, config.shutdown_delay_seconds).run()
