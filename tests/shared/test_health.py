"""Health endpoints: liveness never touches dependencies, readiness is cached and drains."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from intellipost.shared.health import Health
from tests.support import Component, base_env, free_port


def test_live_stays_200_while_the_database_is_down_and_ready_is_503(tmp_path: Path) -> None:
    dead_db = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere"
    env = base_env(
        tmp_path,
        INTELLIPOST_USER_DATABASE_URL=dead_db,
        INTELLIPOST_USER_AUTO_MIGRATE="false",
    )
    user = Component("user", free_port(), env, tmp_path / "user.log").start()
    try:
        assert httpx.get(user.url + "/health/live").status_code == 200
        ready = httpx.get(user.url + "/health/ready", timeout=10)
        assert ready.status_code == 503
        check = ready.json()["checks"]["database"]
        assert check["status"] == "unhealthy"
        # The detail names the failure, never the connection string.
        assert "postgres@" not in (check["detail"] or "")
        assert httpx.get(user.url + "/health/startup", timeout=10).status_code == 503
        detailed = httpx.get(user.url + "/health", timeout=10)
        assert detailed.status_code == 503
        assert detailed.json()["status"] == "unhealthy"
    finally:
        user.stop()


def test_detailed_health_reports_checks_and_system_figures(tmp_path: Path) -> None:
    user = Component("user", free_port(), base_env(tmp_path), tmp_path / "user.log").start()
    try:
        body = httpx.get(user.url + "/health", timeout=10).json()
        assert body["status"] == "healthy"
        assert body["service"] == "user"
        assert body["checks"]["database"]["status"] == "healthy"
        assert body["uptime_s"] >= 0
        assert 0 <= body["system"]["memory_percent"] <= 100
        assert body["system"]["process_rss_mb"] > 0
        assert body["check_duration_ms"] >= 0
        startup = httpx.get(user.url + "/health/startup", timeout=10)
        assert startup.status_code == 200
        assert startup.json()["status"] == "started"
    finally:
        user.stop()


async def test_readiness_results_are_cached_for_the_ttl() -> None:
    calls = 0

    async def counting_check() -> str | None:
        nonlocal calls
        calls += 1
        return None

    health = Health(service="t", version="1", environment="test", cache_ttl_seconds=0.3)
    health.add_check("dep", counting_check)
    await asyncio.gather(*(health.run_checks() for _ in range(20)))
    await health.run_checks()
    assert calls == 1
    await asyncio.sleep(0.35)
    await health.run_checks()
    assert calls == 2


async def test_a_hanging_check_times_out_as_unhealthy() -> None:
    async def hangs() -> str | None:
        await asyncio.sleep(10)
        return None

    health = Health(service="t", version="1", environment="test")
    health.add_check("slow", hangs, timeout_seconds=0.05)
    (result,) = await health.run_checks()
    assert result.status == "unhealthy"
    assert "timed out" in (result.detail or "")


async def test_a_failing_non_critical_check_degrades_without_failing_readiness() -> None:
    async def broken() -> str | None:
        raise ConnectionError("object storage unreachable")

    async def fine() -> str | None:
        return "ok"

    health = Health(service="t", version="1", environment="test")
    health.add_check("database", fine)
    health.add_check("storage", broken, critical=False)
    app = _app_with(health)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        assert (await client.get("/health/ready")).status_code == 200
        detailed = await client.get("/health")
        assert detailed.status_code == 200
        assert detailed.json()["status"] == "degraded"


def test_sigterm_turns_readiness_503_before_the_listener_closes(tmp_path: Path) -> None:
    env = base_env(tmp_path, INTELLIPOST_USER_SHUTDOWN_DELAY_SECONDS="3")
    user = Component("user", free_port(), env, tmp_path / "user.log").start(wait="/health/ready")
    try:
        user.signal(signal.SIGTERM)
        deadline = time.monotonic() + 2
        statuses = set()
        while time.monotonic() < deadline:
            statuses.add(httpx.get(user.url + "/health/ready", timeout=2).status_code)
            if 503 in statuses:
                break
            time.sleep(0.05)
        assert 503 in statuses
        # Still serving: liveness answers while load balancers notice.
        assert httpx.get(user.url + "/health/live", timeout=2).status_code == 200
        assert user.proc is not None
        user.proc.wait(timeout=15)
        assert any(r.get("message", "").startswith("shutdown begun") for r in user.log_records())
    finally:
        user.stop()


def _app_with(health: Health) -> FastAPI:
    app = FastAPI()
    app.include_router(health.router())
    return app


@pytest.fixture(autouse=True)
def _reset_shutdown_state() -> None:
    from intellipost.shared.health import shutdown_state

    shutdown_state.shutting_down = False
