"""Settings of the product service (``INTELLIPOST_PRODUCT_*``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from intellipost.shared.app import load_config
from intellipost.shared.config import (
    INSECURE_VALUES,
    AuthMixin,
    BaseModuleConfig,
    ConfigError,
    DatabaseMixin,
    module_config,
)

# Well-known keys of local S3 stand-ins (MinIO, moto): fine on a laptop, never in production.
_STAND_IN_S3_SECRETS = frozenset({"minioadmin", "minio123", "testing", "test"})


class ProductConfig(BaseModuleConfig, DatabaseMixin, AuthMixin):
    model_config = module_config("product")
    module = "product"

    port: int = Field(8002, ge=1, le=65535, description="Port to bind.")
    max_request_body_mb: float = Field(
        90.0, gt=0, description="Largest request body (up to 8 images of max_image_size_mb)."
    )
    max_image_size_mb: float = Field(10.0, gt=0, description="Largest image accepted.")
    min_image_width: int = Field(500, ge=1, description="Narrowest image accepted, in pixels.")
    min_image_height: int = Field(500, ge=1, description="Shortest image accepted, in pixels.")
    max_image_pixels: int = Field(
        50_000_000,
        ge=1,
        description="Most pixels (width x height) an image may have; more is refused unread "
        "(decompression bombs).",
    )
    image_quality: int = Field(85, ge=1, le=100, description="JPEG/WebP re-encode quality.")
    thumbnail_sizes: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [150, 300, 600], description="Thumbnail edges, comma separated."
    )
    ai_confidence_threshold: float = Field(
        0.8, ge=0, le=1, description="Quality score at or above which content is ready."
    )
    min_price: float = Field(1.0, ge=0, description="Lowest price accepted.")
    max_price: float = Field(100_000_000.0, gt=0, description="Highest price accepted.")
    ai_content_url: str = Field("http://127.0.0.1:8004", description="AI content service.")
    mercadolibre_url: str = Field("http://127.0.0.1:8003", description="MercadoLibre service.")
    public_base_url: str = Field(
        "http://127.0.0.1:8002",
        description="This service's own URL as the MercadoLibre service reaches it (it fetches "
        "the pictures of a listing from here with the seller's token).",
    )
    ai_timeout_seconds: float = Field(
        40.0, gt=0, description="Longest wait for the AI content service to generate content."
    )
    mercadolibre_timeout_seconds: float = Field(
        90.0, gt=0, description="Longest wait for the MercadoLibre service to publish a listing."
    )
    task_lease_seconds: float = Field(
        30.0,
        gt=0,
        description="Background work renews its claim on a product this often (x3); a claim "
        "not renewed for this long (the process died) moves the product to failed.",
    )
    idempotency_key_ttl_hours: float = Field(
        24.0,
        gt=0,
        description="How long an Idempotency-Key is remembered; after that the same key makes "
        "a new request.",
    )
    orphan_sweep_minutes: float = Field(
        60.0,
        ge=0,
        description="How often stored image files that no image refers to (left by a crash or "
        "a storage fault) are looked for and removed; 0 turns the sweep off.",
    )
    orphan_grace_minutes: float = Field(
        60.0,
        gt=0,
        description="Age a file must reach before the sweep may remove it; longer than any "
        "upload in flight.",
    )
    storage_backend: Literal["local", "s3"] = Field(
        "local", description="Where images are kept: local (a directory) or s3 (S3-compatible)."
    )
    media_dir: Path | None = Field(
        None, description="Directory of the local storage; unset means <var_dir>/media."
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO: http://minio:9000); unset means AWS."
    )
    s3_bucket: str = Field("intellipost-media", description="Bucket that holds the images.")
    s3_region: str = Field("us-east-1", description="Region of the bucket.")
    s3_access_key_id: str | None = Field(
        None, description="Access key id; unset means the default AWS credential chain."
    )
    s3_secret_access_key: SecretStr | None = Field(
        None, description="Secret access key; unset means the default AWS credential chain."
    )

    @field_validator("thumbnail_sizes", mode="before")
    @classmethod
    def _split_sizes(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [int(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("thumbnail_sizes")
    @classmethod
    def _positive_sizes(cls, value: list[int]) -> list[int]:
        if not value or any(size < 16 or size > 4096 for size in value):
            raise ValueError("give one or more edges between 16 and 4096 pixels")
        return sorted(set(value))

    @model_validator(mode="after")
    def _s3_credentials_for_production(self) -> Self:
        # The S3 secret matters only when S3 is the backend: a production fleet on local
        # storage (or on an instance role, with neither key set) needs none.
        if not self.is_production or self.storage_backend != "s3":
            return self
        key_id = self.s3_access_key_id
        secret = self.s3_secret_access_key.get_secret_value() if self.s3_secret_access_key else ""
        if bool(key_id) != bool(secret.strip()):
            raise ConfigError(
                f"{self.env_name('s3_access_key_id')} and {self.env_name('s3_secret_access_key')}"
                " go together: set both, or neither for the default AWS credential chain"
            )
        if secret and (secret in INSECURE_VALUES or secret in _STAND_IN_S3_SECRETS):
            raise ConfigError(
                f"{self.env_name('s3_secret_access_key')} is a development default; "
                "set the real secret for production"
            )
        return self

    @property
    def media_path(self) -> Path:
        return self.media_dir or self.var_dir / "media"

    @property
    def max_image_bytes(self) -> int:
        return int(self.max_image_size_mb * 1024 * 1024)


@lru_cache
def get_config() -> ProductConfig:
    return load_config(ProductConfig)
