"""The contract every provider keeps: what goes in, what comes out, how it fails."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from intellipost.ai_content.categories import Category
from intellipost.ai_content.extraction import Facts
from intellipost.ai_content.schemas import Attribute, ImageInput

FailureKind = Literal[
    "timeout", "unavailable", "rate_limited", "invalid_answer", "rejected", "budget"
]


@dataclass(frozen=True, slots=True)
class GenerationInput:
    prompt: str
    images: tuple[ImageInput, ...]
    site: str
    language: str
    category: Category
    title_limit: int
    min_description_length: int
    max_description_length: int
    facts: Facts


@dataclass(frozen=True, slots=True)
class Draft:
    title: str
    description: str
    attributes: tuple[Attribute, ...]
    provider: str
    model: str


class ProviderError(Exception):
    """A provider could not give a usable answer; ``kind`` says why (safe to log)."""

    def __init__(self, provider: str, kind: FailureKind, detail: str = "") -> None:
        super().__init__(f"{provider}: {kind}{f' ({detail})' if detail else ''}")
        self.provider = provider
        self.kind = kind
        self.detail = detail


class Provider(Protocol):
    name: str
    model: str
    # Remote providers cost money and time: they count against the daily budget and the
    # concurrency cap, and get one regeneration when their answer fails the checks.
    remote: bool

    async def generate(
        self, request: GenerationInput, feedback: Sequence[str], timeout_seconds: float
    ) -> Draft: ...
