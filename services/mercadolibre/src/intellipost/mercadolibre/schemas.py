"""Request and response bodies of the mercadolibre service."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    Base64Bytes,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from intellipost.mercadolibre.sites import SiteId

ListingType = Literal[
    "gold_pro", "gold_special", "gold_premium", "gold", "silver", "bronze", "free"
]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- Connection ---------------------------------------------------------------------------


class ConnectOut(BaseModel):
    authorization_url: str
    state: str
    expires_in: int


class ConnectionOut(BaseModel):
    site: str
    ml_user_id: int
    nickname: str
    scopes: list[str]
    expires_at: datetime
    status: Literal["active", "revoked"]
    connected_at: datetime
    refreshed_at: datetime | None


# --- Categories ---------------------------------------------------------------------------


class PredictIn(Strict):
    title: Annotated[Text, StringConstraints(max_length=500)]
    site: SiteId
    limit: int = Field(4, ge=1, le=8, description="Most candidates to return.")


class CategoryRef(BaseModel):
    id: str
    name: str


class AttributeRef(BaseModel):
    id: str
    name: str


class SuggestedAttribute(BaseModel):
    id: str
    value_id: str | None = None
    value_name: str | None = None


class Candidate(BaseModel):
    category_id: str
    category_name: str
    domain_id: str | None
    domain_name: str | None
    path_from_root: list[CategoryRef]
    required_attributes: list[AttributeRef]
    suggested_attributes: list[SuggestedAttribute]
    max_title_length: int
    max_pictures_per_item: int


class PredictOut(BaseModel):
    candidates: list[Candidate]


# --- Listings -----------------------------------------------------------------------------


class PictureIn(Strict):
    """A picture as a URL the product service serves, or as base64 bytes."""

    url: Annotated[str, StringConstraints(max_length=2048)] | None = None
    data: Base64Bytes | None = None
    filename: Annotated[str, StringConstraints(max_length=255)] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> PictureIn:
        if (self.url is None) == (self.data is None):
            raise ValueError("give exactly one of url or data")
        return self


class AttributeIn(Strict):
    id: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9_]{1,64}$")]
    value_name: Annotated[str, StringConstraints(max_length=255)] | None = None
    value_id: Annotated[str, StringConstraints(max_length=64)] | None = None

    @model_validator(mode="after")
    def _has_value(self) -> AttributeIn:
        if not self.value_name and not self.value_id:
            raise ValueError("give value_name or value_id")
        return self


class ListingIn(Strict):
    product_id: Annotated[Text, StringConstraints(max_length=64)]
    title: Annotated[Text, StringConstraints(max_length=255)]
    description: Annotated[str, StringConstraints(max_length=50000)] = ""
    category_id: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}\d{1,12}$")]
    price: Decimal = Field(gt=0, le=Decimal("9999999999"), max_digits=14, decimal_places=2)
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    quantity: int = Field(ge=1, le=99999)
    condition: Literal["new", "used", "not_specified"] = "new"
    listing_type: ListingType = "gold_special"
    pictures: list[PictureIn] = Field(min_length=1, max_length=20)
    attributes: list[AttributeIn] = Field(default_factory=list, max_length=100)

    @field_validator("pictures", mode="before")
    @classmethod
    def _bare_urls(cls, value: Any) -> Any:
        # A plain string is a URL: ["http://.../images/1?size=original", ...].
        if isinstance(value, list):
            return [{"url": v} if isinstance(v, str) else v for v in value]
        return value


class ListingOut(BaseModel):
    item_id: str
    permalink: str | None
    status: str | None
    product_id: str


class ItemPicture(BaseModel):
    id: str | None
    url: str | None


class ItemAttribute(BaseModel):
    id: str
    name: str | None = None
    value_id: str | None = None
    value_name: str | None = None


class ListingDetail(ListingOut):
    site_id: str | None
    title: str | None
    category_id: str | None
    price: float | None
    currency: str | None
    available_quantity: int | None
    condition: str | None
    listing_type: str | None
    pictures: list[ItemPicture]
    attributes: list[ItemAttribute]
    created_at: datetime
