"""Any OpenAI-compatible chat completions API (OpenAI, Ollama, vLLM) over plain HTTP."""

from __future__ import annotations

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


class OpenAIProvider:
    name = "openai"
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
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self._api_key = api_key
        self.temperature = temperature
        self.image_input = image_input

    def request_body(self, request: GenerationInput, feedback: Sequence[str]) -> dict[str, Any]:
        text = user_prompt(request, feedback)
        content: str | list[dict[str, Any]] = text
        urls = image_urls(request) if self.image_input else []
        if urls:
            content = [{"type": "text", "text": text}] + [
                {"type": "image_url", "image_url": {"url": url, "detail": "low"}} for url in urls
            ]
        return {
            "model": self.model,
            "temperature": self.temperature,
            "messages": [
                {"role": "system", "content": system_prompt(request)},
                {"role": "user", "content": content},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "listing", "strict": True, "schema": ANSWER_SCHEMA},
            },
        }

    async def generate(
        self, request: GenerationInput, feedback: Sequence[str], timeout_seconds: float
    ) -> Draft:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        data = await post_json(
            self.name,
            self.url,
            self.request_body(request, feedback),
            headers=headers,
            timeout_seconds=timeout_seconds,
        )
        return parse_answer(self.name, str(data.get("model") or self.model), _content(data))


def _content(data: dict[str, Any]) -> str:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ProviderError("openai", "invalid_answer", "no choices")
    choice = choices[0]
    if choice.get("finish_reason") == "length":
        raise ProviderError("openai", "invalid_answer", "answer cut off at the token limit")
    message = choice.get("message")
    if not isinstance(message, dict):
        raise ProviderError("openai", "invalid_answer", "no message")
    if message.get("refusal"):
        raise ProviderError("openai", "invalid_answer", "the model refused")
    content = message.get("content")
    if isinstance(content, list):
        # Some servers answer with content parts even for text.
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if not isinstance(content, str) or not content.strip():
        raise ProviderError("openai", "invalid_answer", "empty content")
    return content
