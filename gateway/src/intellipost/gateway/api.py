"""The gateway's own routes: the fleet inventory at ``/api/v1/info``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request

from intellipost.gateway.config import GatewayConfig
from intellipost.shared.http import get_service_client

router = APIRouter(tags=["gateway"])


async def _upstream_info(name: str, url: str, timeout_seconds: float) -> dict[str, Any]:
    began = time.perf_counter()
    try:
        response = await get_service_client().get(f"{url}/info", timeout=timeout_seconds)
        elapsed = round((time.perf_counter() - began) * 1000, 1)
        if response.status_code != 200:
            return {"name": name, "status": "unhealthy", "http_status": response.status_code}
        return {"status": "up", "latency_ms": elapsed, **response.json()}
    except Exception as exc:  # an unreachable upstream is part of the inventory, not an error
        return {"name": name, "status": "unreachable", "error": type(exc).__name__}


@router.get("/api/v1/info")
async def fleet_info(request: Request) -> dict[str, Any]:
    """The gateway and every upstream's ``/info``, fetched concurrently."""
    config: GatewayConfig = request.app.state.config
    health = request.app.state.health
    upstreams = config.upstreams()
    answers = await asyncio.gather(
        *(_upstream_info(n, u, config.readiness_timeout_seconds * 2) for n, u in upstreams.items())
    )
    gateway = {
        "name": config.service_name,
        "version": config.service_version,
        "environment": config.environment,
        "uptime_s": round(health.uptime_seconds, 1),
        "status": "up",
    }
    components = [gateway, *answers]
    return {
        "components": components,
        "healthy": all(c.get("status") == "up" for c in components),
    }
