"""Request and response bodies of the product API."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

if TYPE_CHECKING:
    from intellipost.product.models import Product, ProductImage

Status = Literal["processing", "ready", "needs_review", "publishing", "published", "failed"]
Site = Literal["MLA", "MLB", "MLM", "MLC", "MCO"]
Condition = Literal["new", "used"]
Step = Literal["generation", "publishing"]

CURRENCIES: dict[str, str] = {"MLA": "ARS", "MLB": "BRL", "MLM": "MXN", "MLC": "CLP", "MCO": "COP"}
MAX_IMAGES = 8

PromptText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=500)]
Price = Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2)]
Quantity = Annotated[int, Field(ge=1, le=99999)]
IdempotencyKeyHeader = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,255}$")]


class Attribute(BaseModel):
    """A MercadoLibre item attribute, as `POST /items` takes it."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Z][A-Z0-9_]{1,63}$")]
    value_name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)
    ]


class ProductPatch(BaseModel):
    """The seller's changes before publishing; what is left out stays as it is.

    ``attributes`` replaces the whole list. Title, description and attributes are checked
    again by the AI content service, which stores them as a new content version.
    """

    model_config = ConfigDict(extra="forbid")

    title: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
        | None
    ) = None
    description: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50000)]
        | None
    ) = None
    attributes: list[Attribute] | None = Field(None, max_length=100)
    price: Price | None = None
    quantity: Quantity | None = None
    condition: Condition | None = None

    @field_validator("attributes")
    @classmethod
    def _each_once(cls, value: list[Attribute] | None) -> list[Attribute] | None:
        if value is not None:
            ids = [a.id for a in value]
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            if repeated:
                raise ValueError(f"each attribute once; repeated: {', '.join(repeated)}")
        return value

    @property
    def content_changes(self) -> dict[str, Any]:
        """The fields that make a new content version, as the content service takes them."""
        return self.model_dump(include={"title", "description", "attributes"}, exclude_none=True)


class ImageOut(BaseModel):
    id: str
    position: int
    format: str
    width: int
    height: int
    size_bytes: int
    dominant_colors: list[str]
    urls: dict[str, str] = Field(description="Size ('original', '300', ...) -> URL.")

    @classmethod
    def from_row(cls, image: ProductImage) -> ImageOut:
        path = f"/api/v1/products/{image.product_id}/images/{image.id}"
        return cls(
            id=image.id,
            position=image.position,
            format=image.format,
            width=image.width,
            height=image.height,
            size_bytes=image.size_bytes,
            dominant_colors=image.dominant_colors,
            urls={size: f"{path}?size={size}" for size in image.variants},
        )


class CategoryOut(BaseModel):
    id: str
    name: str
    confidence: float | None = None


class QualityCheckOut(BaseModel):
    name: str
    passed: bool
    detail: str


class QualityOut(BaseModel):
    score: float
    passed: bool
    checks: list[QualityCheckOut]


class ContentOut(BaseModel):
    """The latest content version of the product (from the AI content service)."""

    id: str
    version: int
    title: str
    description: str
    category: CategoryOut
    attributes: list[Attribute]
    quality: QualityOut
    needs_review: bool
    provider: str
    model: str
    language: str


class FailureOut(BaseModel):
    step: Step
    reason: str


class ListingOut(BaseModel):
    item_id: str
    permalink: str | None


class ProductOut(BaseModel):
    id: str
    status: Status
    prompt: str
    site: Site
    currency: str
    price: Decimal | None
    quantity: int
    condition: Condition
    images: list[ImageOut]
    content: ContentOut | None
    failure: FailureOut | None = Field(None, description="Why the last step failed (failed only).")
    listing: ListingOut | None = Field(None, description="The MercadoLibre item (published only).")
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None

    @classmethod
    def from_row(cls, product: Product) -> ProductOut:
        failure = (
            FailureOut(step=product.failed_step, reason=product.failure_reason)
            if product.status == "failed" and product.failed_step and product.failure_reason
            else None
        )
        listing = (
            ListingOut(item_id=product.item_id, permalink=product.permalink)
            if product.item_id
            else None
        )
        return cls(
            id=product.id,
            status=product.status,
            prompt=product.prompt,
            site=product.site,
            currency=CURRENCIES[product.site],
            price=product.price,
            quantity=product.quantity,
            condition=product.condition,
            images=[ImageOut.from_row(image) for image in product.images],
            content=ContentOut.model_validate(product.content) if product.content else None,
            failure=failure,
            listing=listing,
            created_at=product.created_at,
            updated_at=product.updated_at,
            published_at=product.published_at,
        )


class ProductPage(BaseModel):
    items: list[ProductOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")
