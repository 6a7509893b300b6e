"""Google's Gemini ``generateContent`` REST API over plain HTTP."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from intellipost.ai_content.providers.base import Draft, GenerationInput, ProviderError
from intellipost.ai_content.providers.prompting import (
    ANSWER_SCHEMA,
    image_urls,
    parse_answer,
    system_prompt,
    user_prompt,
)
from intellipost.ai_content.providers.transport import post_json

DATA_URL = re.compile(r"^data:(image/[a-z]+);base64,(.+)$", re.DOTALL)
BLOCKED_FINISH = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"})


def gemini_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Gemini's ``responseSchema`` is an OpenAPI subset: its ``Type`` enum names in capitals
    and no ``additionalProperties``."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "additionalProperties":
            continue
        if key == "type" and isinstance(value, str):
            out[key] = value.upper()
        elif isinstance(value, dict):
            out[key] = (
                {k: gemini_schema(v) for k, v in value.items()}
                if key == "properties"
                else gemini_schema(value)
            )
        else:
            out[key] = value
    return out


class GeminiProvider:
    name = "gemini"
    remote = True

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None,
        temperature: float,
        image_input: bool,
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/models/{model}:generateContent"
        self.model = model
        self._api_key = api_key
        self.temperature = temperature
        self.image_input = image_input

    def request_body(self, request: GenerationInput, feedback: Sequence[str]) -> dict[str, Any]:
        parts: list[dict[str, Any]] = [{"text": user_prompt(request, feedback)}]
        if self.image_input:
            # Gemini takes image bytes inline; a plain https URL stays in the text only.
            for url in image_urls(request):
                match = DATA_URL.match(url)
                if match:
                    data = "".join(match.group(2).split())
                    parts.append({"inlineData": {"mimeType": match.group(1), "data": data}})
        return {
            "systemInstruction": {"parts": [{"text": system_prompt(request)}]},
            "contents": [{"role": "user", "parts": parts}],
            "generationConfig": {
                "temperature": self.temperature,
                "responseMimeType": "application/json",
                "responseSchema": gemini_schema(ANSWER_SCHEMA),
            },
        }

    async def generate(
        self, request: GenerationInput, feedback: Sequence[str], timeout_seconds: float
    ) -> Draft:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["x-goog-api-key"] = self._api_key
        data = await post_json(
            self.name,
            self.url,
            self.request_body(request, feedback),
            headers=headers,
            timeout_seconds=timeout_seconds,
        )
        model = str(data.get("modelVersion") or self.model)
        return parse_answer(self.name, model, _text(data))


def _text(data: dict[str, Any]) -> str:
    feedback = data.get("promptFeedback")
    if isinstance(feedback, dict) and feedback.get("blockReason"):
        raise ProviderError("gemini", "invalid_answer", f"blocked: {feedback['blockReason']}")
    candidates = data.get("candidates")
    if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
        raise ProviderError("gemini", "invalid_answer", "no candidates")
    candidate = candidates[0]
    finish = candidate.get("finishReason")
    if finish == "MAX_TOKENS":
        raise ProviderError("gemini", "invalid_answer", "answer cut off at the token limit")
    if finish in BLOCKED_FINISH:
        raise ProviderError("gemini", "invalid_answer", f"blocked: {finish}")
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        raise ProviderError("gemini", "invalid_answer", "no content parts")
    text = "".join(p.get("text", "") for p in parts if isinstance(p, dict) and not p.get("thought"))
    if not text.strip():
        raise ProviderError("gemini", "invalid_answer", "empty content")
    return text
