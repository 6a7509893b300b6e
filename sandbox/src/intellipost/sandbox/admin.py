"""The sandbox's own switches and counters (`/_sandbox/*`), apart from the MercadoLibre API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from intellipost.sandbox.api import gate
from intellipost.sandbox.faults import Faults
from intellipost.shared.errors import ProblemError

router = APIRouter(prefix="/_sandbox", tags=["sandbox control"])


@router.get("/stats")
async def stats(request: Request) -> dict[str, Any]:
    """Calls that reached the API, by route, plus token grants, 429s and injected errors."""
    return gate(request).stats.as_dict()


@router.get("/faults")
async def current_faults(request: Request) -> Faults:
    return gate(request).faults


@router.post("/faults")
async def set_faults(request: Request, changes: dict[str, Any]) -> Faults:
    """Change some switches (latency_ms, error_rate, error_status, fail_next, ...)."""
    try:
        return gate(request).configure(changes)
    except ValidationError as exc:
        fields = ", ".join(str(e["loc"][0]) for e in exc.errors() if e["loc"])
        raise ProblemError(422, f"Invalid switches: {fields}", slug="validation-error") from exc


@router.post("/reset")
async def reset(request: Request) -> dict[str, str]:
    """Back to the configured switches and zero counters; data (items, tokens) stays."""
    gate(request).reset()
    return {"status": "reset"}
