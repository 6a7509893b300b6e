"""Rules of content generation: cache, providers with fallback, quality control, versions."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from intellipost.ai_content.cache import CachedContent, ContentCache, input_key
from intellipost.ai_content.categories import (
    BASE_REQUIRED,
    Category,
    CategoryResolver,
    builtin_by_id,
)
from intellipost.ai_content.config import AiContentConfig
from intellipost.ai_content.extraction import extract
from intellipost.ai_content.limits import (
    Limiter,
    LimiterUnavailableError,
    SlotTimeoutError,
    seconds_until_utc_midnight,
)
from intellipost.ai_content.models import ContentVersion
from intellipost.ai_content.providers.base import Draft, GenerationInput, Provider, ProviderError
from intellipost.ai_content.quality import Report, Rules, evaluate
from intellipost.ai_content.repository import ContentRepository
from intellipost.ai_content.schemas import Attribute, GenerateRequest, ValidateRequest
from intellipost.shared.errors import ProblemError
from intellipost.shared.logging import get_structured_logger

log = get_structured_logger("ai_content")

# Below this many seconds left, a provider call is not worth starting.
MIN_CALL_SECONDS = 0.5
EDIT_PROVIDER = "manual"
EDIT_MODEL = "seller-edit"


@dataclass(frozen=True, slots=True)
class Outcome:
    version: ContentVersion
    quality: Report
    cached: bool
    created: bool


class ContentService:
    def __init__(
        self,
        *,
        config: AiContentConfig,
        repository: ContentRepository,
        cache: ContentCache,
        limiter: Limiter,
        resolver: CategoryResolver,
        providers: Mapping[str, Provider],
    ) -> None:
        self.config = config
        self.repository = repository
        self.cache = cache
        self.limiter = limiter
        self.resolver = resolver
        self.primary = providers[config.primary_provider]
        fallback = config.fallback_provider
        self.fallback = (
            providers[fallback] if fallback and fallback != config.primary_provider else None
        )
        self.rules = Rules(
            threshold=config.quality_score_threshold,
            default_max_title_length=config.max_title_length,
            min_description_length=config.min_description_length,
            max_description_length=config.max_description_length,
        )

    # --- generation ------------------------------------------------------------------

    async def generate(self, owner_id: str, request: GenerateRequest) -> Outcome:
        language = request.resolved_language(self.config.default_language)
        key = input_key(request, language, self.primary.name, self.primary.model)
        hit = await self.cache.get(key)
        if hit is not None:
            latest = await self.repository.latest(owner_id, request.product_id)
            if latest is not None and latest.input_hash == key:
                # A retried request: the version it made before, not a duplicate.
                return Outcome(latest, self.assess_row(latest), cached=True, created=False)
            draft, category = hit.draft, hit.category
        else:
            deadline = time.monotonic() + self.config.generation_timeout_seconds
            category = await self.resolver.resolve(
                request.prompt, request.site, request.category_hint
            )
            draft = await self._produce(request, language, category, deadline)
            # Only the configured provider's answer is kept: a fallback's stands in for a
            # passing failure and should not outlive it.
            if draft.provider == self.primary.name:
                await self.cache.put(key, CachedContent(draft, category))

        report = self.assess(draft.title, draft.description, draft.attributes, language, category)
        row = await self.repository.insert_next(
            id=str(uuid.uuid4()),
            owner_id=owner_id,
            product_id=request.product_id,
            site=request.site,
            language=language,
            title=draft.title,
            description=draft.description,
            category=category.as_dict(),
            attributes=[a.model_dump() for a in draft.attributes],
            quality=report.as_dict(),
            needs_review=not report.passed,
            provider=draft.provider,
            model=draft.model,
            cached=hit is not None,
            input_hash=key,
            parent_id=None,
            prompt=request.prompt,
            created_at=datetime.now(UTC),
        )
        log.audit(
            "content.generate",
            "content_version",
            content_id=row.id,
            product_id=row.product_id,
            version=row.version,
            provider=row.provider,
            model=row.model,
            cached=row.cached,
            score=report.score,
            needs_review=row.needs_review,
        )
        return Outcome(row, report, cached=hit is not None, created=True)

    async def _produce(
        self, request: GenerateRequest, language: str, category: Category, deadline: float
    ) -> Draft:
        generation = GenerationInput(
            prompt=request.prompt,
            images=tuple(request.images),
            site=request.site,
            language=language,
            category=category,
            title_limit=category.max_title_length or self.config.max_title_length,
            min_description_length=self.config.min_description_length,
            max_description_length=self.config.max_description_length,
            facts=extract(request.prompt),
        )
        failures: list[ProviderError] = []
        for provider in (self.primary, self.fallback):
            if provider is None:
                continue
            try:
                return await self._reviewed_draft(provider, generation, deadline)
            except ProviderError as exc:
                failures.append(exc)
                log.warning(
                    "provider failed",
                    provider=exc.provider,
                    kind=exc.kind,
                    detail=exc.detail,
                    fallback=self.fallback.name if self.fallback else None,
                )
        raise _unavailable(failures)

    async def _reviewed_draft(
        self, provider: Provider, generation: GenerationInput, deadline: float
    ) -> Draft:
        """A draft; a remote provider whose first draft fails the checks gets one retry."""
        draft = await self._call(provider, generation, (), deadline)
        if not provider.remote:
            return draft
        first = self.assess(
            draft.title,
            draft.description,
            draft.attributes,
            generation.language,
            generation.category,
        )
        if first.passed:
            return draft
        feedback = [f"{check.name}: {check.detail}" for check in first.failed]
        try:
            second_draft = await self._call(provider, generation, feedback, deadline)
        except ProviderError as exc:
            log.warning(
                "regeneration failed; keeping the first draft",
                provider=provider.name,
                kind=exc.kind,
            )
            return draft
        second = self.assess(
            second_draft.title,
            second_draft.description,
            second_draft.attributes,
            generation.language,
            generation.category,
        )
        log.info(
            "draft regenerated after failed checks",
            provider=provider.name,
            first_score=first.score,
            second_score=second.score,
        )
        return second_draft if second.score >= first.score else draft

    async def _call(
        self,
        provider: Provider,
        generation: GenerationInput,
        feedback: Sequence[str],
        deadline: float,
    ) -> Draft:
        remaining = deadline - time.monotonic()
        if not provider.remote:
            return await provider.generate(generation, feedback, remaining)
        if remaining < MIN_CALL_SECONDS:
            raise ProviderError(provider.name, "timeout", "no time left in the request")
        wait = min(self.config.request_timeout_seconds, remaining)
        began = time.perf_counter()
        try:
            async with self.limiter.slot(wait):
                if not await self.limiter.take_budget():
                    raise ProviderError(provider.name, "budget", "daily request limit reached")
                timeout = min(self.config.request_timeout_seconds, deadline - time.monotonic())
                if timeout < MIN_CALL_SECONDS:
                    raise ProviderError(provider.name, "timeout", "no time left in the request")
                try:
                    async with asyncio.timeout(timeout):
                        draft = await provider.generate(generation, feedback, timeout)
                except TimeoutError as exc:
                    raise ProviderError(provider.name, "timeout", f"{timeout:.1f}s") from exc
        except SlotTimeoutError as exc:
            raise ProviderError(provider.name, "timeout", "every provider slot busy") from exc
        except LimiterUnavailableError as exc:
            raise ProviderError(provider.name, "unavailable", f"limiter: {exc}") from exc
        log.performance(
            "provider.generate",
            (time.perf_counter() - began) * 1000,
            provider=provider.name,
            model=draft.model,
            regeneration=bool(feedback),
        )
        return draft

    # --- quality and edits ---------------------------------------------------------------

    def assess(
        self,
        title: str,
        description: str,
        attributes: Sequence[Attribute],
        language: str,
        category: Category,
    ) -> Report:
        return evaluate(
            title=title,
            description=description,
            attributes=attributes,
            language=language,
            max_title_length=category.max_title_length,
            required_attributes=category.required_attributes,
            rules=self.rules,
        )

    def assess_row(self, row: ContentVersion) -> Report:
        return self.assess(
            row.title,
            row.description,
            _attributes(row),
            row.language,
            Category.from_dict(row.category),
        )

    async def validate(self, owner_id: str, version_id: str, edit: ValidateRequest) -> Outcome:
        """Checks the version with the seller's edits; an edit is stored as a new version."""
        row = await self.get(owner_id, version_id)
        category = Category.from_dict(row.category)
        if edit.category_id is not None and edit.category_id != category.id:
            if not edit.category_id.startswith(row.site):
                raise ProblemError(
                    422,
                    f"Category {edit.category_id} is not a category of site {row.site}.",
                    title="Category of another site",
                    slug="category-site-mismatch",
                )
            known = builtin_by_id(edit.category_id)
            category = Category(
                edit.category_id,
                known.name if known else edit.category_id,
                1.0,
                None,
                BASE_REQUIRED,
                "seller",
            )
        title = edit.title if edit.title is not None else row.title
        description = edit.description if edit.description is not None else row.description
        attributes = (
            tuple(edit.attributes) if edit.attributes is not None else tuple(_attributes(row))
        )
        report = self.assess(title, description, attributes, row.language, category)
        unchanged = (
            title == row.title
            and description == row.description
            and list(attributes) == _attributes(row)
            and category.id == row.category["id"]
        )
        if unchanged:
            return Outcome(row, report, cached=row.cached, created=False)
        new = await self.repository.insert_next(
            id=str(uuid.uuid4()),
            owner_id=owner_id,
            product_id=row.product_id,
            site=row.site,
            language=row.language,
            title=title,
            description=description,
            category=category.as_dict(),
            attributes=[a.model_dump() for a in attributes],
            quality=report.as_dict(),
            needs_review=not report.passed,
            provider=EDIT_PROVIDER,
            model=EDIT_MODEL,
            cached=False,
            input_hash=None,
            parent_id=row.id,
            prompt=row.prompt,
            created_at=datetime.now(UTC),
        )
        log.audit(
            "content.edit",
            "content_version",
            content_id=new.id,
            parent_id=row.id,
            product_id=new.product_id,
            version=new.version,
            score=report.score,
            needs_review=new.needs_review,
        )
        return Outcome(new, report, cached=False, created=True)

    # --- reads ---------------------------------------------------------------------------

    async def get(self, owner_id: str, version_id: str) -> ContentVersion:
        row = await self.repository.get(owner_id, version_id)
        if row is None:
            # Someone else's version answers exactly like a missing one.
            raise ProblemError(404, f"No content version {version_id}.", slug="content-not-found")
        return row

    async def versions(self, owner_id: str, product_id: str) -> list[ContentVersion]:
        return await self.repository.list_for_product(owner_id, product_id)


def _attributes(row: ContentVersion) -> list[Attribute]:
    return [Attribute.model_validate(a) for a in row.attributes]


def _unavailable(failures: Sequence[ProviderError]) -> ProblemError:
    reasons = "; ".join(f"{f.provider}: {f.kind}" for f in failures)
    if failures and all(f.kind == "budget" for f in failures):
        return ProblemError(
            429,
            "The daily budget of AI requests is spent; try again after midnight UTC.",
            title="Daily AI request limit reached",
            slug="daily-limit-reached",
            headers={"Retry-After": str(seconds_until_utc_midnight())},
        )
    return ProblemError(
        503,
        f"No content provider could answer ({reasons}). Nothing was stored; try again.",
        title="Content provider unavailable",
        slug="ai-provider-unavailable",
        headers={"Retry-After": "30"},
    )
