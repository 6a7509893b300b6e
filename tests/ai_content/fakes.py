"""Stand-ins over real HTTP: an OpenAI-compatible / Gemini model server and the MercadoLibre
service's category prediction, speaking the real request and response shapes."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tests.support import LocalHTTPServer, QuietHandler

GOOD_LISTING: dict[str, Any] = {
    "title": "Zapatillas Nike Air Max 90 Blancas Talle 42",
    "description": (
        "Zapatillas Nike Air Max 90 en color blanco, talle 42. Producto nuevo, sin uso.\n\n"
        "Características principales:\n- Marca: Nike\n- Modelo: Air Max 90\n- Color: Blanco\n"
        "- Talle: 42\n\n¿Tienes alguna duda? Escríbenos en la sección de preguntas antes de "
        "comprar."
    ),
    "attributes": [
        {"id": "BRAND", "value_name": "Nike"},
        {"id": "MODEL", "value_name": "Air Max 90"},
        {"id": "COLOR", "value_name": "Blanco"},
        {"id": "SIZE", "value_name": "42"},
    ],
}
SHOUTED_LISTING: dict[str, Any] = {
    **GOOD_LISTING,
    "title": "ZAPATILLAS NIKE AIR MAX 90 OFERTA ENVIO GRATIS!!!",
}


@dataclass
class Reply:
    """How the model server answers one request."""

    listing: dict[str, Any] | None = None
    raw_text: str | None = None  # answer content that is not the listing JSON
    status: int = 200
    delay: float = 0.0


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class ModelServer:
    """OpenAI `/v1/chat/completions` and Gemini `/v1beta/models/{m}:generateContent`."""

    replies: deque[Reply] = field(default_factory=deque)
    default: Reply = field(default_factory=lambda: Reply(listing=GOOD_LISTING))
    seen: list[Seen] = field(default_factory=list)
    api_key: str | None = None  # when set, OpenAI calls must carry it
    in_flight: int = 0
    most_in_flight: int = 0
    port: int = 0
    _server: LocalHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def openai_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def gemini_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1beta"

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def calls(self, kind: str) -> list[Seen]:
        marker = "/chat/completions" if kind == "openai" else ":generateContent"
        return [s for s in self.seen if s.path.endswith(marker)]

    def serve(self) -> ModelServer:
        model_server = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                path = self.path.split("?")[0]
                headers = {k.lower(): v for k, v in self.headers.items()}
                with model_server._lock:
                    model_server.seen.append(Seen(path, headers, body))
                    reply = model_server.replies.popleft() if model_server.replies else None
                    model_server.in_flight += 1
                    model_server.most_in_flight = max(
                        model_server.most_in_flight, model_server.in_flight
                    )
                reply = reply or model_server.default
                try:
                    if reply.delay:
                        time.sleep(reply.delay)
                    self._answer(path, body, reply)
                finally:
                    with model_server._lock:
                        model_server.in_flight -= 1

            def _answer(self, path: str, body: dict[str, Any], reply: Reply) -> None:
                key = model_server.api_key
                if (
                    path.endswith("/chat/completions")
                    and key
                    and (self.headers.get("authorization") != f"Bearer {key}")
                ):
                    status, answer = (
                        401,
                        {
                            "error": {
                                "message": "Incorrect API key provided",
                                "type": "invalid_request_error",
                                "param": None,
                                "code": "invalid_api_key",
                            }
                        },
                    )
                elif path.endswith("/chat/completions"):
                    status, answer = _openai(body, reply)
                elif path.endswith(":generateContent"):
                    status, answer = _gemini(path, body, reply)
                else:
                    status, answer = 404, {"error": {"message": "no such route"}}
                data = json.dumps(answer).encode()
                # The client may have given up already (a timeout test).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.answer(status, data)

        self._server = LocalHTTPServer(Handler)
        self.port = self._server.port
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


def _openai(body: dict[str, Any], reply: Reply) -> tuple[int, dict[str, Any]]:
    problems = []
    if not isinstance(body.get("model"), str):
        problems.append("model")
    messages = body.get("messages")
    if not isinstance(messages, list) or [m.get("role") for m in messages] != ["system", "user"]:
        problems.append("messages")
    response_format = body.get("response_format") or {}
    if response_format.get("type") != "json_schema" or "schema" not in (
        response_format.get("json_schema") or {}
    ):
        problems.append("response_format")
    if problems:
        return 400, {
            "error": {
                "message": f"invalid request: {', '.join(problems)}",
                "type": "invalid_request_error",
                "param": problems[0],
                "code": None,
            }
        }
    if reply.status == 429:
        return 429, {
            "error": {
                "message": "Rate limit reached for requests",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
    if reply.status >= 400:
        return reply.status, {
            "error": {"message": "The server had an error", "type": "server_error"}
        }
    content = reply.raw_text if reply.raw_text is not None else json.dumps(reply.listing)
    return 200, {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 412, "completion_tokens": 180, "total_tokens": 592},
    }


def _gemini(path: str, body: dict[str, Any], reply: Reply) -> tuple[int, dict[str, Any]]:
    config = body.get("generationConfig") or {}
    contents = body.get("contents")
    if (
        not isinstance(contents, list)
        or config.get("responseMimeType") != "application/json"
        or "responseSchema" not in config
    ):
        return 400, {
            "error": {"code": 400, "message": "Invalid JSON payload", "status": "INVALID_ARGUMENT"}
        }
    if reply.status == 429:
        return 429, {
            "error": {
                "code": 429,
                "message": "Resource has been exhausted (e.g. check quota).",
                "status": "RESOURCE_EXHAUSTED",
            }
        }
    if reply.status >= 400:
        return reply.status, {"error": {"code": reply.status, "status": "INTERNAL"}}
    text = reply.raw_text if reply.raw_text is not None else json.dumps(reply.listing)
    model = path.rsplit("/", 1)[-1].split(":", 1)[0]
    return 200, {
        "candidates": [
            {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 380,
            "candidatesTokenCount": 170,
            "totalTokenCount": 550,
        },
        "modelVersion": model,
    }


@dataclass
class CategoryPredictor:
    """The MercadoLibre service's `POST /api/v1/mercadolibre/categories/predict`."""

    candidates: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _server: LocalHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self) -> CategoryPredictor:
        predictor = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                headers = {k.lower(): v for k, v in self.headers.items()}
                predictor.seen.append(Seen(self.path, headers, body))
                answer: dict[str, Any]
                if self.path != "/api/v1/mercadolibre/categories/predict":
                    status, answer = 404, {"status": 404}
                else:
                    status, answer = predictor.status, {"candidates": predictor.candidates}
                data = json.dumps(answer).encode()
                self.answer(status, data)

        self._server = LocalHTTPServer(Handler)
        self.port = self._server.port
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


def sneaker_candidate(site: str = "MLA", **changes: Any) -> dict[str, Any]:
    """A candidate as the MercadoLibre service returns it (domain discovery + category)."""
    candidate: dict[str, Any] = {
        "category_id": f"{site}109027",
        "category_name": "Zapatillas",
        "domain_id": f"{site}-SNEAKERS",
        "domain_name": "Zapatillas",
        "path_from_root": [
            {"id": f"{site}1430", "name": "Ropa y Accesorios"},
            {"id": f"{site}109027", "name": "Zapatillas"},
        ],
        "required_attributes": [
            {"id": "BRAND", "name": "Marca"},
            {"id": "MODEL", "name": "Modelo"},
        ],
        "suggested_attributes": [
            {"id": "BRAND", "value_id": "14810", "value_name": "Nike"},
        ],
        "max_title_length": 60,
        "max_pictures_per_item": 12,
    }
    candidate.update(changes)
    return candidate
