"""Liveness, readiness, startup and detailed health endpoints with pluggable checks."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from intellipost.shared.logging import get_structured_logger

log = get_structured_logger("shared.health")

# A check returns a short detail (or None) when healthy and raises when not.
CheckFn = Callable[[], Awaitable[str | None]]
CheckStatus = Literal["healthy", "unhealthy"]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    fn: CheckFn
    # A non-critical check (the marketplace API, object storage) degrades the report but
    # does not take the instance out of rotation.
    critical: bool = True
    timeout_seconds: float = 2.0


@dataclass(slots=True)
class CheckResult:
    name: str
    status: CheckStatus
    critical: bool
    duration_ms: float
    detail: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "critical": self.critical,
            "duration_ms": round(self.duration_ms, 2),
            "detail": self.detail,
        }


class _ShutdownState:
    """Process-wide: the server's signal handler flips it before connections drain."""

    def __init__(self) -> None:
        self.shutting_down = False

    def begin(self) -> None:
        if not self.shutting_down:
            self.shutting_down = True
            log.info("shutdown begun; readiness now reports 503")


shutdown_state = _ShutdownState()


@dataclass
class Health:
    service: str
    version: str
    environment: str
    cache_ttl_seconds: float = 2.0
    disk_path: Path = Path()
    checks: list[Check] = field(default_factory=list)
    startup_checks: list[Check] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    _cached: tuple[float, list[CheckResult]] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _startup_ok: bool = False

    def add_check(
        self, name: str, fn: CheckFn, *, critical: bool = True, timeout_seconds: float = 2.0
    ) -> None:
        self.checks.append(Check(name, fn, critical, timeout_seconds))

    def add_startup_check(self, name: str, fn: CheckFn, *, timeout_seconds: float = 5.0) -> None:
        self.startup_checks.append(Check(name, fn, True, timeout_seconds))

    @property
    def uptime_seconds(self) -> float:
        return time.time() - self.started_at

    async def run_checks(self) -> list[CheckResult]:
        """Every readiness check, cached for a short TTL so probe storms don't reach the DB."""
        now = time.monotonic()
        if self._cached and now - self._cached[0] < self.cache_ttl_seconds:
            return self._cached[1]
        async with self._lock:
            # Another probe may have refreshed the cache while this one waited.
            if self._cached and time.monotonic() - self._cached[0] < self.cache_ttl_seconds:
                return self._cached[1]
            results = list(await asyncio.gather(*(_run(c) for c in self.checks)))
            self._cached = (time.monotonic(), results)
            for r in results:
                if r.status != "healthy":
                    log.warning(
                        "health check failed", check=r.name, detail=r.detail, critical=r.critical
                    )
            return results

    async def startup_complete(self) -> tuple[bool, list[CheckResult]]:
        if self._startup_ok:
            return True, []
        results = list(await asyncio.gather(*(_run(c) for c in self.startup_checks)))
        self._startup_ok = all(r.status == "healthy" for r in results)
        return self._startup_ok, results

    def system(self) -> dict[str, Any]:
        proc = psutil.Process(os.getpid())
        mem = psutil.virtual_memory()
        try:
            disk = psutil.disk_usage(str(self.disk_path.resolve()))
            disk_info: dict[str, Any] = {
                "path": str(self.disk_path),
                "percent": disk.percent,
                "free_mb": round(disk.free / 1_048_576, 1),
            }
        except OSError:
            disk_info = {"path": str(self.disk_path), "percent": None, "free_mb": None}
        return {
            "cpu_percent": psutil.cpu_percent(interval=None),
            "process_cpu_percent": proc.cpu_percent(interval=None),
            "memory_percent": mem.percent,
            "process_rss_mb": round(proc.memory_info().rss / 1_048_576, 1),
            "disk": disk_info,
            "pid": proc.pid,
        }

    def router(self) -> APIRouter:
        router = APIRouter(tags=["health"])

        @router.get("/health/live")
        async def live() -> dict[str, str]:
            return {"status": "alive"}

        @router.get("/health/ready")
        async def ready() -> JSONResponse:
            if shutdown_state.shutting_down:
                return JSONResponse({"status": "shutting_down"}, status_code=503)
            results = await self.run_checks()
            ok = all(r.status == "healthy" for r in results if r.critical)
            return JSONResponse(
                {
                    "status": "ready" if ok else "not_ready",
                    "checks": {r.name: r.as_dict() for r in results},
                },
                status_code=200 if ok else 503,
            )

        @router.get("/health/startup")
        async def startup() -> JSONResponse:
            ok, results = await self.startup_complete()
            return JSONResponse(
                {
                    "status": "started" if ok else "starting",
                    "checks": {r.name: r.as_dict() for r in results},
                },
                status_code=200 if ok else 503,
            )

        @router.get("/health")
        async def detailed() -> JSONResponse:
            began = time.perf_counter()
            results = await self.run_checks()
            critical_ok = all(r.status == "healthy" for r in results if r.critical)
            all_ok = all(r.status == "healthy" for r in results)
            status = "healthy" if all_ok else "degraded" if critical_ok else "unhealthy"
            if shutdown_state.shutting_down:
                status = "unhealthy"
            body = {
                "status": status,
                "service": self.service,
                "version": self.version,
                "environment": self.environment,
                "uptime_s": round(self.uptime_seconds, 1),
                "shutting_down": shutdown_state.shutting_down,
                "checks": {r.name: r.as_dict() for r in results},
                "system": self.system(),
                "check_duration_ms": round((time.perf_counter() - began) * 1000, 2),
            }
            return JSONResponse(body, status_code=503 if status == "unhealthy" else 200)

        return router


async def _run(check: Check) -> CheckResult:
    began = time.perf_counter()
    try:
        detail = await asyncio.wait_for(check.fn(), timeout=check.timeout_seconds)
        status: CheckStatus = "healthy"
    except TimeoutError:
        detail, status = f"timed out after {check.timeout_seconds:g}s", "unhealthy"
    except Exception as exc:  # a failing dependency is a result here, not an error
        detail, status = _describe(exc), "unhealthy"
    return CheckResult(
        check.name, status, check.critical, (time.perf_counter() - began) * 1000, detail
    )


def _describe(exc: Exception) -> str:
    # Only the exception type and its first line: enough for the on-call engineer, and no
    # connection strings with passwords from a driver's verbose message.
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
