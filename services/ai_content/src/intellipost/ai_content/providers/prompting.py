"""What the LLM providers are asked, the JSON shape they must answer in, and its validation."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from intellipost.ai_content.providers.base import Draft, GenerationInput, ProviderError
from intellipost.ai_content.schemas import Attribute

LANGUAGE_NAMES = {"es": "Spanish", "pt": "Brazilian Portuguese", "en": "English"}
SITE_NAMES = {
    "MLA": "Mercado Libre Argentina",
    "MLB": "Mercado Livre Brasil",
    "MLM": "Mercado Libre México",
    "MLC": "Mercado Libre Chile",
    "MCO": "Mercado Libre Colombia",
}
# Image inputs sent to a model: enough to see the product, few enough to keep calls cheap.
MAX_IMAGES = 6

# The answer's JSON Schema, in the subset both OpenAI's strict mode and Gemini accept.
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "description": {"type": "string"},
        "attributes": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "value_name": {"type": "string"}},
                "required": ["id", "value_name"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["title", "description", "attributes"],
    "additionalProperties": False,
}


class Answer(BaseModel):
    title: str = Field(min_length=1, max_length=255)
    description: str = Field(min_length=1, max_length=50000)
    attributes: list[Attribute] = Field(max_length=100)


def system_prompt(request: GenerationInput) -> str:
    language = LANGUAGE_NAMES[request.language]
    return "\n".join(
        [
            "You write product listings for MercadoLibre, Latin America's largest marketplace.",
            f"Write everything in {language}.",
            "Use only facts the seller states or the photos show; never invent specifications,",
            "warranties, prices, shipping terms or accessories.",
            f"Title: at most {request.title_limit} characters, in the order product + brand +",
            "model + key attribute (capacity, size, colour). Normal capitalisation, no ALL CAPS,",
            "no filler or promotional words (offer, free shipping, best price, sale, new), no",
            "emoji, no punctuation runs.",
            f"Description: plain text (no HTML, no Markdown), between "
            f"{request.min_description_length} and {request.max_description_length} characters,",
            "in short sections: an opening sentence, the main features as '- Label: value'",
            "lines, the condition, and an invitation to use the questions section.",
            "Never include phone numbers, emails, URLs, social networks or messaging apps.",
            "Attributes: MercadoLibre attribute ids in upper case (BRAND, MODEL, COLOR, SIZE,",
            "GENDER, ITEM_CONDITION, INTERNAL_MEMORY, RAM, DISPLAY_SIZE, ...) with value_name",
            f"in {language}; leave out what you do not know.",
            "Answer with one JSON object: {title, description, attributes: [{id, value_name}]}.",
        ]
    )


def user_prompt(request: GenerationInput, feedback: Sequence[str]) -> str:
    category = request.category
    known = [f"{a.id}={a.value_name}" for a in request.facts.attributes(request.language)]
    lines = [
        f"Seller's description: {request.prompt}",
        f"Marketplace: {SITE_NAMES.get(request.site, request.site)} ({request.site})",
        f"Category: {category.name} ({category.id})",
        "Required attributes: " + ", ".join(category.required_attributes),
    ]
    known += [f"{k}={v}" for k, v in category.suggested_attributes]
    if known:
        lines.append("Attributes read from the seller's text (check them): " + ", ".join(known))
    for index, image in enumerate(request.images, start=1):
        colours = ", ".join(image.dominant_colors)
        colours = f", dominant colours {colours}" if colours else ""
        lines.append(f"Photo {index}: {image.width}x{image.height} {image.format}{colours}")
    if feedback:
        lines.append(
            "Your previous answer failed these quality checks; fix every one of them: "
            + "; ".join(feedback)
        )
    return "\n".join(lines)


def image_urls(request: GenerationInput) -> list[str]:
    return [image.url for image in request.images if image.url][:MAX_IMAGES]


FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


def _blank_value(attribute: object) -> bool:
    if not isinstance(attribute, dict):
        return False
    value = attribute.get("value_name")
    return value is None or (isinstance(value, str) and not value.strip())


def parse_answer(provider: str, model: str, text: str) -> Draft:
    """The model's JSON answer as a draft, or ``invalid_answer`` when it is not one."""
    try:
        data = json.loads(FENCE.sub("", text.strip()))
    except json.JSONDecodeError as exc:
        raise ProviderError(provider, "invalid_answer", "not JSON") from exc
    if isinstance(data, dict) and isinstance(data.get("attributes"), list):
        # An attribute the model could not fill is left out, not an error.
        data["attributes"] = [a for a in data["attributes"] if not _blank_value(a)]
    try:
        answer = Answer.model_validate(data)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) or "answer" for e in exc.errors()[:3])
        raise ProviderError(provider, "invalid_answer", f"schema: {fields}") from exc
    return Draft(
        title=" ".join(answer.title.split()),
        description=answer.description.strip(),
        attributes=tuple(answer.attributes),
        provider=provider,
        model=model,
    )
