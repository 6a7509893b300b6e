"""HTTP routes of the ai content service (`/api/v1/content/*`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from intellipost.ai_content.schemas import (
    ContentVersionOut,
    GenerateRequest,
    ValidateRequest,
    VersionList,
)
from intellipost.ai_content.service import ContentService, Outcome
from intellipost.shared.auth import CurrentUser

router = APIRouter(prefix="/api/v1/content", tags=["content"])

ProductIdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]


def _service(request: Request) -> ContentService:
    service: ContentService = request.app.state.content
    return service


def _answer(outcome: Outcome, response: Response) -> ContentVersionOut:
    response.status_code = 201 if outcome.created else 200
    return ContentVersionOut.from_row(
        outcome.version, outcome.quality.as_dict(), cached=outcome.cached
    )


@router.post(
    "/generate",
    response_model=ContentVersionOut,
    status_code=201,
    responses={200: {"description": "The version an identical earlier request stored."}},
)
async def generate(
    body: GenerateRequest, user: CurrentUser, request: Request, response: Response
) -> ContentVersionOut:
    outcome = await _service(request).generate(user.user_id, body)
    return _answer(outcome, response)


@router.get("/products/{product_id}/versions", response_model=VersionList)
async def list_versions(
    product_id: ProductIdPath, user: CurrentUser, request: Request
) -> VersionList:
    rows = await _service(request).versions(user.user_id, product_id)
    return VersionList(
        product_id=product_id,
        versions=[ContentVersionOut.from_row(row, cached=row.cached) for row in rows],
    )


@router.get("/{content_id}", response_model=ContentVersionOut)
async def get_version(
    content_id: uuid.UUID, user: CurrentUser, request: Request
) -> ContentVersionOut:
    row = await _service(request).get(user.user_id, str(content_id))
    return ContentVersionOut.from_row(row, cached=row.cached)


@router.post(
    "/{content_id}/validate",
    response_model=ContentVersionOut,
    responses={201: {"description": "The edit, stored as a new version."}},
)
async def validate(
    content_id: uuid.UUID,
    user: CurrentUser,
    request: Request,
    response: Response,
    body: ValidateRequest | None = None,
) -> ContentVersionOut:
    edit = body or ValidateRequest()
    outcome = await _service(request).validate(user.user_id, str(content_id), edit)
    return _answer(outcome, response)
