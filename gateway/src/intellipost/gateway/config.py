"""Settings of the gateway (``INTELLIPOST_GATEWAY_*``), including its route table."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from intellipost.gateway.auth import parse_public_route
from intellipost.shared.app import load_config
from intellipost.shared.config import AuthMixin, BaseModuleConfig, RedisMixin, module_config

DEFAULT_ROUTES = {
    "/api/v1/auth": "user",
    "/api/v1/users": "user",
    "/.well-known/jwks.json": "user",
    "/api/v1/products": "product",
    "/api/v1/mercadolibre": "mercadolibre",
    "/api/v1/content": "ai_content",
}

# Reachable without an access token. The MercadoLibre callback is where the browser lands
# back from MercadoLibre's consent page: the service knows the user by the OAuth `state`.
DEFAULT_PUBLIC_ROUTES = [
    "POST /api/v1/auth/register",
    "POST /api/v1/auth/login",
    "POST /api/v1/auth/refresh",
    "GET /.well-known/jwks.json",
    "GET /api/v1/mercadolibre/callback",
]


class GatewayConfig(BaseModuleConfig, AuthMixin, RedisMixin):
    model_config = module_config("gateway")
    module = "gateway"

    port: int = Field(8000, ge=1, le=65535, description="Port to bind.")
    max_request_body_mb: float = Field(
        100.0, gt=0, description="Largest request body passed upstream."
    )
    user_url: str = Field("http://127.0.0.1:8001", description="User service.")
    product_url: str = Field("http://127.0.0.1:8002", description="Product service.")
    mercadolibre_url: str = Field("http://127.0.0.1:8003", description="MercadoLibre service.")
    ai_content_url: str = Field("http://127.0.0.1:8004", description="AI content service.")
    routes: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_ROUTES),
        description="Public path prefix -> upstream name, as JSON.",
    )
    upstream_timeout_seconds: float = Field(
        30.0, gt=0, description="Longest wait for an upstream's answer (then 504)."
    )
    upstream_connect_timeout_seconds: float = Field(
        3.0, gt=0, description="Longest wait to connect to an upstream (then 502)."
    )
    upstream_max_connections: int = Field(
        512, ge=1, description="Pooled connections to all upstreams together."
    )
    trust_forwarded_headers: bool = Field(
        False,
        description="Append to incoming X-Forwarded-* (behind a trusted proxy) instead of "
        "replacing them.",
    )
    readiness_timeout_seconds: float = Field(
        1.0, gt=0, description="Timeout of each upstream readiness probe."
    )
    public_routes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_PUBLIC_ROUTES),
        description="Routes open without an access token: 'METHOD /path-prefix', comma separated.",
    )
    token_cache_size: int = Field(
        10000, ge=0, description="Verified access tokens remembered until they expire (0: none)."
    )
    rate_limit_per_minute: int = Field(
        1200,
        ge=0,
        description="Requests a minute per caller (the signed-in user, else the client "
        "address); 0 turns the limit off. Shared by every replica when a Redis URL is set.",
    )
    rate_limit_burst: int = Field(
        200, ge=1, description="Requests a caller may make at once above the steady rate."
    )

    @field_validator("public_routes", mode="before")
    @classmethod
    def _split_public_routes(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for entry in value:
                parse_public_route(str(entry))
        return value

    def upstreams(self) -> dict[str, str]:
        return {
            "user": self.user_url,
            "product": self.product_url,
            "mercadolibre": self.mercadolibre_url,
            "ai_content": self.ai_content_url,
        }


@lru_cache
def get_config() -> GatewayConfig:
    return load_config(GatewayConfig)
