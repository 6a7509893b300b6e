"""Generation rules in process (real HTTP to the model servers, SQLite): fallback,
regeneration with feedback, budget, concurrency cap, categories and edits."""

from __future__ import annotations

import asyncio

import pytest

from intellipost.ai_content.schemas import Attribute, ValidateRequest
from intellipost.shared.errors import ProblemError
from tests.ai_content.conftest import Build, nike, openai_settings
from tests.ai_content.fakes import (
    GOOD_LISTING,
    SHOUTED_LISTING,
    CategoryPredictor,
    ModelServer,
    Reply,
    sneaker_candidate,
)


async def test_the_embedded_provider_needs_nothing_but_the_prompt(build: Build) -> None:
    harness = await build()
    outcome = await harness.service.generate("seller-1", nike())
    version = outcome.version
    assert outcome.created
    assert not outcome.cached
    assert (version.provider, version.model) == ("local", "rules-v1")
    assert version.title == "Zapatillas Nike Air Max 90 Blancas Talle 42"
    assert version.category["id"] == "MLA109027"
    assert version.language == "es"
    assert outcome.quality.passed
    assert not version.needs_review


async def test_brazil_defaults_to_portuguese(build: Build) -> None:
    harness = await build()
    outcome = await harness.service.generate("seller-1", nike(site="MLB"))
    assert outcome.version.language == "pt"
    assert outcome.version.title == "Tênis Nike Air Max 90 Branco Tamanho 42"


async def test_an_openai_compatible_provider_is_used_when_configured(
    build: Build, model_server: ModelServer
) -> None:
    harness = await build(**openai_settings(model_server))
    outcome = await harness.service.generate("seller-1", nike())
    assert outcome.version.provider == "openai"
    assert outcome.version.model == "gpt-4o-mini"
    assert outcome.version.title == GOOD_LISTING["title"]
    assert len(model_server.calls("openai")) == 1


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Reply(delay=2.0), id="timeout"),
        pytest.param(Reply(status=429), id="429"),
        pytest.param(Reply(status=502), id="5xx"),
        pytest.param(Reply(raw_text="{not json"), id="invalid-json"),
    ],
)
async def test_a_failing_primary_falls_back_to_the_other_provider(
    build: Build, model_server: ModelServer, reply: Reply
) -> None:
    harness = await build(
        **openai_settings(model_server, request_timeout_seconds=0.5), fallback_provider="local"
    )
    model_server.script(reply)
    outcome = await harness.service.generate("seller-1", nike())
    assert outcome.version.provider == "local"
    assert outcome.quality.passed
    assert len(model_server.calls("openai")) == 1


async def test_gemini_can_be_the_fallback_of_openai(
    build: Build, model_server: ModelServer
) -> None:
    harness = await build(
        **openai_settings(model_server),
        fallback_provider="gemini",
        gemini_base_url=model_server.gemini_url,
        gemini_api_key="gemini-test-key",
    )
    model_server.script(Reply(status=429))
    outcome = await harness.service.generate("seller-1", nike())
    assert outcome.version.provider == "gemini"
    assert len(model_server.calls("openai")) == 1
    assert len(model_server.calls("gemini")) == 1


async def test_without_a_fallback_a_failure_is_a_503_and_stores_nothing(
    build: Build, model_server: ModelServer
) -> None:
    harness = await build(**openai_settings(model_server))
    model_server.script(Reply(status=500))
    with pytest.raises(ProblemError) as caught:
        await harness.service.generate("seller-1", nike())
    assert caught.value.status == 503
    assert caught.value.headers["Retry-After"] == "30"
    assert await harness.service.versions("seller-1", "prod-1") == []


async def test_a_failed_draft_is_regenerated_once_with_the_failed_checks(
    build: Build, model_server: ModelServer
) -> None:
    harness = await build(**openai_settings(model_server))
    model_server.script(Reply(listing=SHOUTED_LISTING), Reply(listing=GOOD_LISTING))
    outcome = await harness.service.generate("seller-1", nike())
    first, second = model_server.calls("openai")
    # No photo URL in the request: the user message is plain text.
    assert "failed these quality checks" not in first.body["messages"][1]["content"]
    feedback = second.body["messages"][1]["content"]
    assert "title_not_all_caps: the title is written in capitals" in feedback
    assert "no_banned_words" in feedback
    assert outcome.version.title == GOOD_LISTING["title"]
    assert outcome.quality.passed
    assert not outcome.version.needs_review


async def test_a_draft_that_fails_twice_is_stored_for_review(
    build: Build, model_server: ModelServer
) -> None:
    harness = await build(**openai_settings(model_server))
    model_server.default = Reply(listing=SHOUTED_LISTING)
    outcome = await harness.service.generate("seller-1", nike())
    assert len(model_server.calls("openai")) == 2
    assert outcome.version.provider == "openai"
    assert outcome.version.needs_review
    assert not outcome.quality.passed
    failed = {c.name for c in outcome.quality.failed}
    assert {"title_not_all_caps", "no_banned_words"} <= failed


async def test_the_embedded_provider_is_not_regenerated(build: Build) -> None:
    harness = await build(quality_score_threshold=1.0)
    outcome = await harness.service.generate(
        "seller-1", nike(prompt="Mesa de madera para comedor, 6 personas")
    )
    # No brand or model: below a threshold of 1.0, stored for review as it is.
    assert outcome.version.needs_review
    assert outcome.version.provider == "local"


async def test_the_daily_budget_sends_calls_to_the_fallback(
    build: Build, model_server: ModelServer
) -> None:
    harness = await build(
        **openai_settings(model_server), fallback_provider="local", daily_request_limit=1
    )
    first = await harness.service.generate("seller-1", nike())
    second = await harness.service.generate(
        "seller-1", nike(prompt="Zapatillas Adidas Superstar negras talle 40, nuevas")
    )
    assert first.version.provider == "openai"
    assert second.version.provider == "local"
    assert len(model_server.calls("openai")) == 1


async def test_a_spent_budget_without_fallback_is_a_429_until_midnight(
    build: Build, model_server: ModelServer
) -> None:
    harness = await build(**openai_settings(model_server), daily_request_limit=1)
    await harness.service.generate("seller-1", nike())
    with pytest.raises(ProblemError) as caught:
        await harness.service.generate("seller-1", nike(prompt="Zapatillas Puma negras talle 40"))
    assert caught.value.status == 429
    assert 0 < int(caught.value.headers["Retry-After"]) <= 86400


async def test_the_concurrency_cap_holds_calls_in_flight(
    build: Build, model_server: ModelServer
) -> None:
    harness = await build(**openai_settings(model_server), max_concurrent_requests=2)
    model_server.default = Reply(listing=GOOD_LISTING, delay=0.3)
    prompts = [f"Zapatillas Nike Air Max {n} blancas talle 42, nuevas" for n in range(90, 95)]
    outcomes = await asyncio.gather(
        *(
            harness.service.generate("seller-1", nike(product_id=f"p{i}", prompt=p))
            for i, p in enumerate(prompts)
        )
    )
    assert all(o.version.provider == "openai" for o in outcomes)
    assert len(model_server.calls("openai")) == 5
    assert model_server.most_in_flight == 2


async def test_the_mercadolibre_prediction_sets_the_category_and_title_limit(
    build: Build, predictor: CategoryPredictor
) -> None:
    predictor.candidates = [
        sneaker_candidate(
            max_title_length=30,
            required_attributes=[{"id": "BRAND", "name": "Marca"}, {"id": "GENDER", "name": "G"}],
        )
    ]
    harness = await build(mercadolibre_url=predictor.url)
    outcome = await harness.service.generate("seller-1", nike())
    [call] = predictor.seen
    assert call.body == {"title": nike().prompt, "site": "MLA"}
    category = outcome.version.category
    assert (category["id"], category["name"], category["confidence"]) == (
        "MLA109027",
        "Zapatillas",
        0.8,
    )
    assert len(outcome.version.title) <= 30
    missing = {c.name: c.detail for c in outcome.quality.failed}
    assert missing == {"required_attributes": "missing GENDER"}


async def test_an_unanswered_prediction_falls_back_to_the_built_in_map(
    build: Build, predictor: CategoryPredictor
) -> None:
    predictor.status = 503
    harness = await build(mercadolibre_url=predictor.url)
    outcome = await harness.service.generate(
        "seller-1", nike(prompt="Celular Samsung Galaxy S23 128GB negro", site="MLB")
    )
    assert outcome.version.category["id"] == "MLB1055"
    assert outcome.version.category["name"] == "Celulares e Smartphones"


async def test_a_category_hint_by_id_wins(build: Build, predictor: CategoryPredictor) -> None:
    predictor.candidates = [sneaker_candidate(), sneaker_candidate(category_id="MLA1276")]
    harness = await build(mercadolibre_url=predictor.url)
    outcome = await harness.service.generate("seller-1", nike(category_hint="MLA1276"))
    assert outcome.version.category["id"] == "MLA1276"
    assert outcome.version.category["confidence"] == 1.0


async def test_an_edit_is_a_new_version_and_the_original_stays(build: Build) -> None:
    harness = await build()
    original = (await harness.service.generate("seller-1", nike())).version
    edit = ValidateRequest(
        title="ZAPATILLAS NIKE AIR MAX 90 OFERTA",
        attributes=[Attribute(id="BRAND", value_name="Nike")],
    )
    outcome = await harness.service.validate("seller-1", original.id, edit)
    assert outcome.created
    edited = outcome.version
    assert (edited.version, edited.parent_id, edited.provider) == (2, original.id, "manual")
    assert edited.description == original.description
    assert edited.needs_review
    failed = {c.name for c in outcome.quality.failed}
    assert failed == {"title_not_all_caps", "no_banned_words", "required_attributes"}
    again = await harness.service.get("seller-1", original.id)
    assert again.title == original.title
    versions = await harness.service.versions("seller-1", "prod-1")
    assert [v.version for v in versions] == [2, 1]


async def test_validating_without_changes_stores_nothing(build: Build) -> None:
    harness = await build()
    original = (await harness.service.generate("seller-1", nike())).version
    outcome = await harness.service.validate("seller-1", original.id, ValidateRequest())
    assert not outcome.created
    assert outcome.version.id == original.id
    assert outcome.quality.passed
    assert len(await harness.service.versions("seller-1", "prod-1")) == 1


async def test_a_category_of_another_site_is_refused(build: Build) -> None:
    harness = await build()
    original = (await harness.service.generate("seller-1", nike())).version
    with pytest.raises(ProblemError) as caught:
        await harness.service.validate(
            "seller-1", original.id, ValidateRequest(category_id="MLB1055")
        )
    assert caught.value.status == 422
    assert len(await harness.service.versions("seller-1", "prod-1")) == 1


async def test_only_the_owner_sees_a_version(build: Build) -> None:
    harness = await build()
    original = (await harness.service.generate("seller-1", nike())).version
    with pytest.raises(ProblemError) as caught:
        await harness.service.get("seller-2", original.id)
    assert caught.value.status == 404
    with pytest.raises(ProblemError):
        await harness.service.validate("seller-2", original.id, ValidateRequest(title="Mío"))
    assert await harness.service.versions("seller-2", "prod-1") == []
