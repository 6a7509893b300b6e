"""MercadoLibre's error bodies: API errors with a `cause` list, and OAuth errors."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from intellipost.shared.errors import problem_response, problem_type

# The sandbox's own endpoints (health, info, docs, admin) keep the fleet's problem+json.
_FLEET_PREFIXES = ("/health", "/_sandbox", "/info", "/docs", "/openapi.json")


def cause(code: str, message: str, *references: str) -> dict[str, Any]:
    """One entry of a validation error's `cause` list, as MercadoLibre writes them."""
    return {
        "department": "items",
        "cause_id": zlib.crc32(code.encode()) % 1000,
        "type": "error",
        "code": code,
        "references": list(references),
        "message": message,
    }


class ApiError(Exception):
    """``{"message", "error", "status", "cause"}``, the shape of every API error."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        causes: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.causes = causes or []
        self.headers = dict(headers or {})

    def response(self) -> Response:
        body = {
            "message": self.message,
            "error": self.error,
            "status": self.status,
            "cause": self.causes,
        }
        return JSONResponse(body, status_code=self.status, headers=self.headers)


class OAuthError(Exception):
    """``{"error", "error_description"}``, the shape of `/oauth/token` refusals."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def invalid_token() -> ApiError:
    return ApiError(401, "invalid_token", "invalid access token")


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


async def _on_api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _on_oauth_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OAuthError)
    return JSONResponse(
        {"error": exc.error, "error_description": exc.description}, status_code=exc.status
    )


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if request.url.path.startswith(_FLEET_PREFIXES):
        return problem_response(exc.status_code, instance=request.url.path, headers=exc.headers)
    if exc.status_code == 404:
        return not_found(f"resource {request.url.path} not found").response()
    return ApiError(exc.status_code, "bad_request", str(exc.detail)).response()


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if request.url.path.startswith(_FLEET_PREFIXES):
        return problem_response(
            422,
            title="Request validation failed",
            type_=problem_type("validation-error"),
            instance=request.url.path,
        )
    causes = [
        cause(
            "parameter.invalid",
            str(err.get("msg", "invalid value")),
            ".".join(str(p) for p in err.get("loc", ())),
        )
        for err in exc.errors()
    ]
    return ApiError(400, "bad_request", "invalid parameters", causes).response()


def install_error_handlers(app: FastAPI) -> None:
    """Replace the fleet's handlers for the MercadoLibre-shaped part of the sandbox."""
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(OAuthError, _on_oauth_error)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_validation)
