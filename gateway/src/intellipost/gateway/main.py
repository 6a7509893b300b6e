"""The gateway's ASGI app: span -> correlation -> edge auth -> rate limit -> size guard -> proxy."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from intellipost.gateway.api import router
from intellipost.gateway.auth import EdgeAuthMiddleware, PublicRoutes
from intellipost.gateway.config import GatewayConfig, get_config
from intellipost.gateway.proxy import Proxy, send_problem
from intellipost.gateway.ratelimit import Limiter, MemoryLimiter, RateLimitMiddleware, RedisLimiter
from intellipost.gateway.tracing import ServerSpanMiddleware
from intellipost.shared.app import create_service_app
from intellipost.shared.correlation import ROUTE_KEY, CorrelationMiddleware
from intellipost.shared.health import CheckFn, Health
from intellipost.shared.http import get_service_client
from intellipost.shared.kv import redis_client
from intellipost.shared.limits import MaxBodySizeMiddleware

# Paths the gateway answers itself; everything else is routed or 404.
_OWN_PREFIXES = ("/health", "/info", "/api/v1/info", "/docs", "/openapi.json")


class Dispatcher:
    """Routes by longest path prefix to an upstream; the gateway's own paths to FastAPI."""

    def __init__(self, proxy: Proxy, api: FastAPI) -> None:
        self.proxy = proxy
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)  # lifespan
            return
        path: str = scope["path"]
        matched = self.proxy.match(path)
        if matched is not None:
            scope[ROUTE_KEY] = matched[0]
            await self.proxy.forward(scope, receive, send, matched[1])
        elif path.startswith(_OWN_PREFIXES):
            await self.api(scope, receive, send)
        else:
            await send_problem(
                send,
                404,
                f"No route for {path}.",
                slug="route-not-found",
                instance=path,
            )


def _upstream_check(name: str, url: str, timeout: float) -> CheckFn:
    async def check() -> str | None:
        response = await get_service_client().get(
            f"{url}/health/ready", timeout=timeout, forward_auth=False
        )
        if response.status_code != 200:
            raise RuntimeError(f"{name} answered {response.status_code}")
        return None

    return check


def _limiter(config: GatewayConfig) -> Limiter:
    redis = redis_client(config)
    if redis is None:
        return MemoryLimiter(config.rate_limit_per_minute, config.rate_limit_burst)
    return RedisLimiter(
        redis, config.rate_limit_per_minute, config.rate_limit_burst, prefix=config.redis_key_prefix
    )


def create_app(config: GatewayConfig | None = None) -> ASGIApp:
    config = config or get_config()
    proxy = Proxy(config)
    health = Health(
        service=config.service_name,
        version=config.service_version,
        environment=config.environment,
    )
    for name, url in config.upstreams().items():
        health.add_check(
            f"upstream:{name}",
            _upstream_check(name, url, config.readiness_timeout_seconds),
            timeout_seconds=config.readiness_timeout_seconds + 0.5,
        )

    limiter = _limiter(config) if config.rate_limit_per_minute else None
    if limiter is not None:
        # Requests pass while the store is away (logged): degraded, not unready.
        health.add_check("rate_limit_store", limiter.ping, critical=False)

    async def start_proxy(_: FastAPI) -> None:
        await proxy.start()

    async def stop_proxy(_: FastAPI) -> None:
        await proxy.close()
        if limiter is not None:
            await limiter.aclose()

    api = create_service_app(
        config,
        title="IntelliPost Gateway",
        description="The one entry point to the IntelliPost fleet.",
        routers=[router],
        health=health,
        on_startup=[start_proxy],
        on_shutdown=[stop_proxy],
        edge=False,
    )
    app: ASGIApp = Dispatcher(proxy, api)
    app = MaxBodySizeMiddleware(app, max_bytes=int(config.max_request_body_mb * 1024 * 1024))
    if limiter is not None:
        app = RateLimitMiddleware(
            app,
            limiter=limiter,
            per_minute=config.rate_limit_per_minute,
            burst=config.rate_limit_burst,
            exempt_prefixes=_OWN_PREFIXES,
            trust_forwarded=config.trust_forwarded_headers,
        )
    app = EdgeAuthMiddleware(
        app,
        verifier=api.state.verifier,
        public_routes=PublicRoutes(config.public_routes, open_prefixes=_OWN_PREFIXES),
        cache_size=config.token_cache_size,
    )
    app = CorrelationMiddleware(app, service=config.service_name)
    return ServerSpanMiddleware(app)


app = create_app()
