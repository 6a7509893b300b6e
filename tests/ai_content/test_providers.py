"""The LLM providers over real HTTP against local servers speaking OpenAI's
`/v1/chat/completions` and Gemini's `generateContent` shapes."""

from __future__ import annotations

import base64
import json

import pytest

from intellipost.ai_content.categories import builtin_category
from intellipost.ai_content.extraction import extract
from intellipost.ai_content.providers.base import GenerationInput, ProviderError
from intellipost.ai_content.providers.gemini import GeminiProvider
from intellipost.ai_content.providers.openai import OpenAIProvider
from intellipost.ai_content.schemas import ImageInput
from intellipost.shared.http import close_service_client
from tests.ai_content.fakes import GOOD_LISTING, ModelServer, Reply

PROMPT = "Zapatillas Nike Air Max 90 blancas talle 42, nuevas"
PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


@pytest.fixture(autouse=True)
async def _fresh_client() -> None:
    # Each test's calls go through the process's shared client; start from a clean one.
    await close_service_client()


def generation(*, with_photo: bool = True) -> GenerationInput:
    images = (
        (
            ImageInput(
                id="img-1",
                width=1200,
                height=1200,
                format="png",
                dominant_colors=["white"],
                url=f"data:image/png;base64,{PIXEL}",
            ),
        )
        if with_photo
        else ()
    )
    return GenerationInput(
        prompt=PROMPT,
        images=images,
        site="MLA",
        language="es",
        category=builtin_category(PROMPT, "MLA"),
        title_limit=60,
        min_description_length=80,
        max_description_length=5000,
        facts=extract(PROMPT),
    )


def openai(server: ModelServer, **changes: object) -> OpenAIProvider:
    settings: dict[str, object] = {
        "base_url": server.openai_url,
        "model": "gpt-4o-mini",
        "api_key": "sk-test-provider-key",
        "temperature": 0.2,
        "image_input": True,
    }
    settings.update(changes)
    return OpenAIProvider(**settings)  # type: ignore[arg-type]


def gemini(server: ModelServer) -> GeminiProvider:
    return GeminiProvider(
        base_url=server.gemini_url,
        model="gemini-2.0-flash",
        api_key="gemini-test-key",
        temperature=0.2,
        image_input=True,
    )


async def test_openai_answer_becomes_a_draft_and_the_request_has_the_real_shape(
    model_server: ModelServer,
) -> None:
    draft = await openai(model_server).generate(generation(), (), 5.0)
    assert draft.title == GOOD_LISTING["title"]
    assert draft.provider == "openai"
    assert draft.model == "gpt-4o-mini"
    assert {a.id: a.value_name for a in draft.attributes}["MODEL"] == "Air Max 90"

    [call] = model_server.calls("openai")
    assert call.path == "/v1/chat/completions"
    assert call.headers["authorization"] == "Bearer sk-test-provider-key"
    body = call.body
    assert body["model"] == "gpt-4o-mini"
    assert body["temperature"] == 0.2
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["required"] == ["title", "description", "attributes"]
    system, user = body["messages"]
    assert "at most 60 characters" in system["content"]
    assert "Spanish" in system["content"]
    text, image = user["content"]
    assert PROMPT in text["text"]
    assert "Zapatillas (MLA109027)" in text["text"]
    assert "BRAND=Nike" in text["text"]
    assert image == {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{PIXEL}", "detail": "low"},
    }


async def test_a_text_only_model_gets_no_image_parts(model_server: ModelServer) -> None:
    await openai(model_server, image_input=False).generate(generation(), (), 5.0)
    [call] = model_server.calls("openai")
    assert isinstance(call.body["messages"][1]["content"], str)


async def test_no_key_means_no_authorization_header(model_server: ModelServer) -> None:
    # Ollama and vLLM serve without a key; the caller's own token must never be sent.
    await openai(model_server, api_key=None).generate(generation(with_photo=False), (), 5.0)
    [call] = model_server.calls("openai")
    assert "authorization" not in call.headers


async def test_feedback_reaches_the_model(model_server: ModelServer) -> None:
    await openai(model_server).generate(
        generation(), ["title_not_all_caps: the title is written in capitals"], 5.0
    )
    [call] = model_server.calls("openai")
    assert "the title is written in capitals" in call.body["messages"][1]["content"][0]["text"]


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (Reply(raw_text="Here is your listing: title Zapatillas Nike"), "invalid_answer"),
        (Reply(raw_text=json.dumps({"title": "Zapatillas Nike"})), "invalid_answer"),
        (Reply(raw_text=json.dumps({**GOOD_LISTING, "title": ""})), "invalid_answer"),
        (Reply(status=429), "rate_limited"),
        (Reply(status=500), "unavailable"),
        (Reply(status=503), "unavailable"),
        (Reply(delay=1.5), "timeout"),
    ],
)
async def test_openai_failures_are_sorted_for_fallback(
    model_server: ModelServer, reply: Reply, kind: str
) -> None:
    model_server.script(reply)
    # A short timeout only where the server is made slow; elsewhere a generous one.
    timeout = 0.5 if reply.delay else 5.0
    with pytest.raises(ProviderError) as caught:
        await openai(model_server).generate(generation(), (), timeout)
    assert caught.value.kind == kind
    assert caught.value.provider == "openai"


async def test_a_fenced_json_answer_is_accepted(model_server: ModelServer) -> None:
    model_server.script(Reply(raw_text="```json\n" + json.dumps(GOOD_LISTING) + "\n```"))
    draft = await openai(model_server).generate(generation(), (), 5.0)
    assert draft.title == GOOD_LISTING["title"]


async def test_a_wrong_key_is_reported_as_rejected_and_not_retried(
    model_server: ModelServer,
) -> None:
    model_server.api_key = "sk-the-right-key"
    with pytest.raises(ProviderError) as caught:
        await openai(model_server, api_key="sk-a-wrong-key").generate(generation(), (), 5.0)
    assert caught.value.kind == "rejected"
    assert len(model_server.calls("openai")) == 1


async def test_gemini_answer_becomes_a_draft_and_the_request_has_the_real_shape(
    model_server: ModelServer,
) -> None:
    draft = await gemini(model_server).generate(generation(), (), 5.0)
    assert draft.title == GOOD_LISTING["title"]
    assert draft.provider == "gemini"
    assert draft.model == "gemini-2.0-flash"

    [call] = model_server.calls("gemini")
    assert call.path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert call.headers["x-goog-api-key"] == "gemini-test-key"
    assert "authorization" not in call.headers
    body = call.body
    assert "Spanish" in body["systemInstruction"]["parts"][0]["text"]
    config = body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"]["type"] == "OBJECT"
    assert config["responseSchema"]["properties"]["attributes"]["type"] == "ARRAY"
    assert "additionalProperties" not in json.dumps(config["responseSchema"])
    text, image = body["contents"][0]["parts"]
    assert PROMPT in text["text"]
    assert image == {"inlineData": {"mimeType": "image/png", "data": PIXEL}}


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (Reply(raw_text="not json at all"), "invalid_answer"),
        (Reply(status=429), "rate_limited"),
        (Reply(status=500), "unavailable"),
        (Reply(delay=1.5), "timeout"),
    ],
)
async def test_gemini_failures_are_sorted_for_fallback(
    model_server: ModelServer, reply: Reply, kind: str
) -> None:
    model_server.script(reply)
    timeout = 0.5 if reply.delay else 5.0
    with pytest.raises(ProviderError) as caught:
        await gemini(model_server).generate(generation(), (), timeout)
    assert caught.value.kind == kind
