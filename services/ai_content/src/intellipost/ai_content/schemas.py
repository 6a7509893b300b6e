"""Request and response bodies of the AI content API."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

if TYPE_CHECKING:
    from intellipost.ai_content.models import ContentVersion

Site = Literal["MLA", "MLB", "MLM", "MLC", "MCO"]
Language = Literal["es", "pt", "en"]

# Brazil lists in Portuguese; the other sites in Spanish unless the request says otherwise.
SITE_LANGUAGES: dict[str, Language] = {"MLB": "pt"}

ATTRIBUTE_ID = re.compile(r"^[A-Z][A-Z0-9_]{1,63}$")
IMAGE_URL = re.compile(
    r"^(https?://\S{1,2000}|data:image/(jpeg|png|webp|gif);base64,[A-Za-z0-9+/=\s]+)$"
)

Prompt = Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=500)]
ProductId = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9._:-]{1,64}$")
]
ValueName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class Attribute(BaseModel):
    """A MercadoLibre item attribute (`{id, value_name}` as `POST /items` takes it)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="MercadoLibre attribute id, e.g. BRAND, MODEL, COLOR.")
    value_name: ValueName

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        value = value.strip().upper()
        if not ATTRIBUTE_ID.match(value):
            raise ValueError("must look like a MercadoLibre attribute id (BRAND, MODEL, ...)")
        return value


class ImageInput(BaseModel):
    """A product photo as the product service describes it (the bytes stay there)."""

    id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
    width: int = Field(ge=1, le=20000)
    height: int = Field(ge=1, le=20000)
    format: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]{2,8}$")]
    dominant_colors: list[
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
    ] = Field(default_factory=list, max_length=10)
    url: str | None = Field(
        None,
        description="An https URL or a data: URL; passed to models that take image input.",
    )

    @field_validator("format", mode="before")
    @classmethod
    def _format_lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _url_shape(cls, value: str | None) -> str | None:
        if value is not None and not IMAGE_URL.match(value):
            raise ValueError("must be an http(s) URL or a data:image/...;base64 URL")
        return value


class GenerateRequest(BaseModel):
    product_id: ProductId
    prompt: Prompt
    images: list[ImageInput] = Field(default_factory=list, max_length=12)
    site: Site
    language: Language | None = None
    category_hint: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
        | None
    ) = None

    @model_validator(mode="after")
    def _hint_of_this_site(self) -> Self:
        hint = self.category_hint
        if hint and re.fullmatch(r"[A-Z]{3}\d{1,12}", hint) and not hint.startswith(self.site):
            raise ValueError(f"category_hint {hint} is not a category of site {self.site}")
        return self

    def resolved_language(self, default: Language) -> Language:
        return self.language or SITE_LANGUAGES.get(self.site, default)


class ValidateRequest(BaseModel):
    """The seller's edits; what is left out keeps the value of the version edited."""

    title: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
        | None
    ) = None
    description: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50000)]
        | None
    ) = None
    attributes: list[Attribute] | None = Field(None, max_length=100)
    category_id: (
        Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Z]{3}\d{1,12}$")]
        | None
    ) = None

    @field_validator("attributes")
    @classmethod
    def _one_value_per_attribute(cls, value: list[Attribute] | None) -> list[Attribute] | None:
        if value is not None:
            ids = [a.id for a in value]
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            if repeated:
                raise ValueError(f"each attribute once; repeated: {', '.join(repeated)}")
        return value


class CategoryOut(BaseModel):
    id: str
    name: str
    confidence: float


class CheckOut(BaseModel):
    name: str
    passed: bool
    detail: str


class QualityOut(BaseModel):
    score: float
    passed: bool
    checks: list[CheckOut]


class ContentVersionOut(BaseModel):
    id: str
    product_id: str
    version: int
    title: str
    description: str
    category: CategoryOut
    attributes: list[Attribute]
    quality: QualityOut
    needs_review: bool
    provider: str
    model: str
    language: Language
    site: Site
    parent_id: str | None = Field(
        None, description="The version this one was edited from (edits only)."
    )
    created_at: datetime
    cached: bool

    @classmethod
    def from_row(
        cls, row: ContentVersion, quality: dict[str, Any] | None = None, *, cached: bool
    ) -> ContentVersionOut:
        quality = quality or row.quality
        created = row.created_at
        if created.tzinfo is None:  # SQLite keeps no zone; every timestamp is stored in UTC.
            created = created.replace(tzinfo=UTC)
        return cls(
            id=row.id,
            product_id=row.product_id,
            version=row.version,
            title=row.title,
            description=row.description,
            category=CategoryOut(
                id=row.category["id"],
                name=row.category["name"],
                confidence=row.category["confidence"],
            ),
            attributes=[Attribute.model_validate(a) for a in row.attributes],
            quality=QualityOut.model_validate(quality),
            needs_review=not quality["passed"],
            provider=row.provider,
            model=row.model,
            language=row.language,
            site=row.site,
            parent_id=row.parent_id,
            created_at=created,
            cached=cached,
        )


class VersionList(BaseModel):
    product_id: str
    versions: list[ContentVersionOut] = Field(description="Newest first.")
