"""HTTP routes of the mercadolibre service (public under /api/v1/mercadolibre via the gateway)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response

from intellipost.mercadolibre.models import Connection
from intellipost.mercadolibre.schemas import (
    ConnectionOut,
    ConnectOut,
    ListingDetail,
    ListingIn,
    ListingOut,
    PredictIn,
    PredictOut,
)
from intellipost.mercadolibre.service import CategoryService, ConnectionService, ListingService
from intellipost.mercadolibre.sites import SiteId
from intellipost.shared.auth import CurrentUser
from intellipost.shared.errors import ProblemError

router = APIRouter(prefix="/api/v1/mercadolibre", tags=["mercadolibre"])
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True, slots=True)
class Services:
    connections: ConnectionService
    categories: CategoryService
    listings: ListingService


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def _connection_out(connection: Connection) -> ConnectionOut:
    return ConnectionOut(
        site=connection.site_id,
        ml_user_id=connection.ml_user_id,
        nickname=connection.nickname,
        scopes=connection.scopes.split(),
        expires_at=connection.access_expires_at,
        status="revoked" if connection.status == "revoked" else "active",
        connected_at=connection.connected_at,
        refreshed_at=connection.refreshed_at,
    )


@router.get("/connect")
async def connect(request: Request, user: CurrentUser, site: SiteId = "MLA") -> ConnectOut:
    """The URL to send the seller to; valid for ten minutes, once."""
    return await services(request).connections.connect(user.user_id, site)


@router.get("/callback")
async def callback(
    request: Request,
    code: Annotated[str | None, Query(max_length=512)] = None,
    state: Annotated[str | None, Query(max_length=256)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> ConnectionOut:
    """Public: the browser returns here from MercadoLibre; the state identifies the user."""
    connection = await services(request).connections.callback(code=code, state=state, error=error)
    return _connection_out(connection)


@router.get("/connection")
async def connection(request: Request, user: CurrentUser) -> ConnectionOut:
    found = await services(request).connections.get(user.user_id)
    if found is None:
        raise ProblemError(
            404, "No MercadoLibre account is connected.", slug="mercadolibre-not-connected"
        )
    return _connection_out(found)


@router.delete("/connection", status_code=204)
async def disconnect(request: Request, user: CurrentUser) -> Response:
    await services(request).connections.disconnect(user.user_id)
    return Response(status_code=204)


@router.post("/categories/predict")
async def predict(request: Request, user: CurrentUser, body: PredictIn) -> PredictOut:
    found = services(request)
    token = await found.connections.token_if_connected(user.user_id)
    candidates = await found.categories.predict(
        body.title, body.site, limit=body.limit, token=token
    )
    return PredictOut(candidates=candidates)


@router.post("/listings", status_code=201)
async def publish(
    request: Request,
    response: Response,
    user: CurrentUser,
    body: ListingIn,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> ListingOut:
    """Pictures, item and description; a retry with the same Idempotency-Key lists once."""
    if idempotency_key is None or not _IDEMPOTENCY_KEY.match(idempotency_key):
        raise ProblemError(
            400,
            "An Idempotency-Key header (1-255 visible ASCII characters) is required.",
            title="Idempotency-Key required",
            slug="idempotency-key-required",
        )
    listing, replayed = await services(request).listings.publish(
        user.user_id, idempotency_key, body
    )
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return listing


@router.get("/listings/{item_id}")
async def get_listing(
    request: Request,
    user: CurrentUser,
    item_id: Annotated[str, Path(pattern=r"^[A-Z]{3}\d{1,16}$")],
) -> ListingDetail:
    return await services(request).listings.get(user.user_id, item_id)
