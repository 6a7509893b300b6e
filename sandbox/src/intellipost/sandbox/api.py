"""Routes of the MercadoLibre sandbox: the API (shapes of api.mercadolibre.com) and its pages."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from intellipost.sandbox import catalog, pages
from intellipost.sandbox.errors import ApiError, OAuthError, cause, not_found
from intellipost.sandbox.faults import Gate
from intellipost.sandbox.store import Sandbox


def sandbox(request: Request) -> Sandbox:
    store: Sandbox = request.app.state.sandbox
    return store


def gate(request: Request) -> Gate:
    found: Gate = request.app.state.gate
    return found


async def admit(request: Request) -> None:
    """Every API call: counted, delayed, rate limited per app, or failed on purpose."""
    store = sandbox(request)
    route_path = getattr(request.scope.get("route"), "path", request.url.path)
    route = f"{request.method} {route_path}"
    _, _, token = (request.headers.get("authorization") or "").partition(" ")
    grant = store.access_tokens.get(token.strip())
    client = request.client.host if request.client else "unknown"
    app = grant.client_id if grant is not None else f"anonymous:{client}"
    the_gate = gate(request)
    if the_gate.latency_seconds:
        await asyncio.sleep(the_gate.latency_seconds)
    the_gate.admit(route, app)


api = APIRouter(dependencies=[Depends(admit)], tags=["mercadolibre api"])
pages_router = APIRouter(tags=["pages"])


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "body.invalid", "the body is not valid JSON") from exc


# --- OAuth -------------------------------------------------------------------------------


@api.post("/oauth/token")
async def token(request: Request) -> JSONResponse:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    store = sandbox(request)
    stats = gate(request).stats
    grant_type = fields.get("grant_type", "")
    required = {
        "authorization_code": ("client_id", "client_secret", "code", "redirect_uri"),
        "refresh_token": ("client_id", "client_secret", "refresh_token"),
    }.get(grant_type)
    if required is None:
        raise OAuthError("unsupported_grant_type", "grant_type is not supported")
    missing = [name for name in required if not fields.get(name)]
    if missing:
        raise OAuthError("invalid_request", f"missing {', '.join(missing)}")
    stats.grants[grant_type] += 1
    try:
        if grant_type == "authorization_code":
            body = store.exchange_code(
                client_id=fields["client_id"],
                client_secret=fields["client_secret"],
                code=fields["code"],
                redirect_uri=fields["redirect_uri"],
                code_verifier=fields.get("code_verifier"),
            )
        else:
            body = store.refresh(
                client_id=fields["client_id"],
                client_secret=fields["client_secret"],
                refresh_token=fields["refresh_token"],
            )
    except OAuthError:
        stats.grant_failures[grant_type] += 1
        raise
    return JSONResponse(body)


@api.get("/users/me")
async def users_me(request: Request) -> dict[str, Any]:
    store = sandbox(request)
    return store.user_of(request.headers.get("authorization")).public(store.base_url)


# --- Sites and categories ---------------------------------------------------------------


def _site(site_id: str) -> str:
    if site_id not in catalog.SITES:
        raise not_found(f"Site {site_id} not found")
    return site_id


@api.get("/sites/{site_id}/domain_discovery/search")
async def domain_discovery(
    site_id: str,
    q: Annotated[str, Query(min_length=1, max_length=500)],
    limit: Annotated[int, Query(ge=1, le=8)] = 4,
) -> list[dict[str, Any]]:
    return catalog.discover(_site(site_id), q, limit)


@api.get("/sites/{site_id}/listing_types")
async def listing_types(site_id: str) -> list[dict[str, str]]:
    names = {
        "gold_pro": "Premium",
        "gold_special": "Clásica",
        "gold_premium": "Oro Premium",
        "gold": "Oro",
        "silver": "Plata",
        "bronze": "Bronce",
        "free": "Gratuita",
    }
    site = _site(site_id)
    return [{"site_id": site, "id": lt, "name": names[lt]} for lt in catalog.LISTING_TYPES]


@api.get("/categories/{category_id}")
async def category(category_id: str) -> dict[str, Any]:
    found = catalog.category(category_id)
    if found is None:
        raise not_found(f"Category {category_id} not found")
    return found


@api.get("/categories/{category_id}/attributes")
async def category_attributes(category_id: str) -> list[dict[str, Any]]:
    found = catalog.attributes(category_id)
    if found is None:
        raise not_found(f"Category {category_id} not found")
    return found


# --- Pictures ---------------------------------------------------------------------------


@api.post("/pictures/items/upload", status_code=201)
async def upload_picture(request: Request) -> dict[str, Any]:
    store = sandbox(request)
    user = store.user_of(request.headers.get("authorization"))
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(
            400,
            "bad_request",
            "the body must be multipart/form-data",
            [cause("picture.file.missing", "Send the picture in the field 'file'", "file")],
        )
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise ApiError(
            400,
            "bad_request",
            "file is required",
            [cause("picture.file.missing", "Send the picture in the field 'file'", "file")],
        )
    content = await upload.read()
    return store.upload_picture(user, content)


# --- Items ------------------------------------------------------------------------------


@api.post("/items", status_code=201)
async def create_item(request: Request) -> dict[str, Any]:
    store = sandbox(request)
    user = store.user_of(request.headers.get("authorization"))
    return store.create_item(user, await _json_body(request))


@api.get("/items/{item_id}")
async def get_item(request: Request, item_id: str) -> dict[str, Any]:
    store = sandbox(request)
    store.grant_for(request.headers.get("authorization"))  # a bad token is still refused
    return store.item(item_id)


@api.put("/items/{item_id}")
async def update_item(request: Request, item_id: str) -> dict[str, Any]:
    store = sandbox(request)
    user = store.user_of(request.headers.get("authorization"))
    return store.update_item(user, item_id, await _json_body(request))


@api.get("/items/{item_id}/description")
async def get_description(request: Request, item_id: str) -> dict[str, Any]:
    store = sandbox(request)
    store.grant_for(request.headers.get("authorization"))
    return store.description(item_id)


@api.post("/items/{item_id}/description", status_code=201)
async def create_description(request: Request, item_id: str) -> dict[str, Any]:
    store = sandbox(request)
    user = store.user_of(request.headers.get("authorization"))
    return store.set_description(user, item_id, await _json_body(request), replace=False)


@api.put("/items/{item_id}/description")
async def replace_description(request: Request, item_id: str) -> dict[str, Any]:
    store = sandbox(request)
    user = store.user_of(request.headers.get("authorization"))
    return store.set_description(user, item_id, await _json_body(request), replace=True)


# --- Pages (the auth host and the public site; not API calls) ---------------------------


def _valid_redirect(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme in {"http", "https"} and bool(parts.netloc) and not parts.fragment


def _authorization_problem(store: Sandbox, params: dict[str, str]) -> str | None:
    if params.get("response_type") != "code":
        return "response_type must be code"
    if not store.check_client(params.get("client_id", "")):
        return "unknown client_id"
    if not _valid_redirect(params.get("redirect_uri", "")):
        return "redirect_uri must be an absolute http(s) URL"
    method = params.get("code_challenge_method")
    if params.get("code_challenge") and method not in {"S256", "plain"}:
        return "code_challenge_method must be S256 or plain"
    if params.get("site_id", "MLA") not in catalog.SITES:
        return "unknown site_id"
    return None


def _decide(store: Sandbox, params: dict[str, str], approved: bool) -> Response:
    redirect_uri = params["redirect_uri"]
    back: dict[str, str] = {}
    if approved:
        user = store.user_for(
            params.get("nickname") or "TEST_SELLER", params.get("site_id") or "MLA"
        )
        back["code"] = store.issue_code(
            client_id=params["client_id"],
            redirect_uri=redirect_uri,
            user=user,
            challenge=params.get("code_challenge") or None,
            method=(params.get("code_challenge_method") or "plain")
            if params.get("code_challenge")
            else None,
        )
    else:
        back["error"] = "access_denied"
    if params.get("state"):
        back["state"] = params["state"]
    separator = "&" if urlsplit(redirect_uri).query else "?"
    return RedirectResponse(f"{redirect_uri}{separator}{urlencode(back)}", status_code=302)


@pages_router.get("/authorization", response_class=HTMLResponse)
async def authorization_page(request: Request) -> Response:
    """The approve page; ``approve=1`` approves at once (for curl and tests)."""
    store = sandbox(request)
    params = dict(request.query_params)
    problem = _authorization_problem(store, params)
    if problem is not None:
        return HTMLResponse(pages.error_page(problem), status_code=400)
    if params.get("approve") == "1":
        return _decide(store, params, approved=True)
    return HTMLResponse(pages.approve_page(params))


@pages_router.post("/authorization")
async def authorization_decision(request: Request) -> Response:
    store = sandbox(request)
    form = await request.form()
    params = {k: v for k, v in form.items() if isinstance(v, str)}
    problem = _authorization_problem(store, params)
    if problem is not None:
        return HTMLResponse(pages.error_page(problem), status_code=400)
    return _decide(store, params, approved=params.get("decision") == "approve")


@pages_router.get("/pictures/{file_name}")
async def picture_file(request: Request, file_name: str) -> Response:
    store = sandbox(request)
    picture = store.pictures.get(file_name.rsplit("-", 1)[0])
    if picture is None:
        raise not_found("picture not found")
    return Response(picture.content, media_type=picture.content_type)


@pages_router.get("/articulo/{slug}", response_class=HTMLResponse)
async def item_page(request: Request, slug: str) -> HTMLResponse:
    store = sandbox(request)
    site, _, rest = slug.partition("-")
    item_id = site + rest.split("-", 1)[0]
    item = store.item(item_id)
    description = store.descriptions.get(item_id)
    return HTMLResponse(pages.item_page(item, description["plain_text"] if description else None))
