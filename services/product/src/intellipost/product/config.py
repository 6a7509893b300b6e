"""Settings of the product service (``INTELLIPOST_PRODUCT_*``)."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from intellipost.shared.app import load_config
from intellipost.shared.config import AuthMixin, BaseModuleConfig, DatabaseMixin, module_config


class ProductConfig(BaseModuleConfig, DatabaseMixin, AuthMixin):
    model_config = module_config("product")
    module = "product"

    port: int = Field(8002, ge=1, le=65535, description="Port to bind.")
    max_request_body_mb: float = Field(
        90.0, gt=0, description="Largest request body (up to 8 images of max_image_size_mb)."
    )
    max_image_size_mb: float = Field(10.0, gt=0, description="Largest image accepted.")
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

    @field_validator("thumbnail_sizes", mode="before")
    @classmethod
    def _split_sizes(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [int(part) for part in value.split(",") if part.strip()]
        return value


@lru_cache
def get_config() -> ProductConfig:
    return load_config(ProductConfig)
