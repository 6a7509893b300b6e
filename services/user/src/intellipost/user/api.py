"""HTTP routes of the user service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status

from intellipost.shared.auth import CurrentUser
from intellipost.user.schemas import (
    ChangePasswordRequest,
    Jwks,
    LoginRequest,
    RefreshRequest,
    RegisterRequest,
    TokenPair,
    UpdateProfileRequest,
    UserOut,
)
from intellipost.user.service import IssuedTokens, UserService

router = APIRouter()
# Every verifier caches keys itself; this only spares the proxies a request per token.
JWKS_CACHE_CONTROL = "public, max-age=60"


def get_service(request: Request) -> UserService:
    service: UserService = request.app.state.user_service
    return service


Service = Annotated[UserService, Depends(get_service)]


def _pair(tokens: IssuedTokens, response: Response) -> TokenPair:
    # RFC 6749 §5.1: token answers must not be stored by any cache.
    response.headers["Cache-Control"] = "no-store"
    return TokenPair(
        access_token=tokens.access_token,
        expires_in=tokens.expires_in,
        refresh_token=tokens.refresh_token,
        refresh_expires_in=tokens.refresh_expires_in,
    )


@router.post(
    "/api/v1/auth/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    tags=["auth"],
)
async def register(body: RegisterRequest, service: Service) -> Any:
    return await service.register(
        body.email, body.password.get_secret_value(), body.first_name, body.last_name
    )


@router.post("/api/v1/auth/login", tags=["auth"])
async def login(body: LoginRequest, service: Service, response: Response) -> TokenPair:
    tokens = await service.login(
        body.email, body.password.get_secret_value(), remember_me=body.remember_me
    )
    return _pair(tokens, response)


@router.post("/api/v1/auth/refresh", tags=["auth"])
async def refresh(body: RefreshRequest, service: Service, response: Response) -> TokenPair:
    tokens = await service.refresh(body.refresh_token.get_secret_value())
    return _pair(tokens, response)


@router.post("/api/v1/auth/logout", status_code=status.HTTP_204_NO_CONTENT, tags=["auth"])
async def logout(user: CurrentUser, service: Service) -> None:
    await service.logout(user.user_id, user.claims.get("sid"))


@router.get("/api/v1/users/me", response_model=UserOut, tags=["users"])
async def me(user: CurrentUser, service: Service) -> Any:
    return await service.profile(user.user_id)


@router.patch("/api/v1/users/me", response_model=UserOut, tags=["users"])
async def update_me(body: UpdateProfileRequest, user: CurrentUser, service: Service) -> Any:
    return await service.update_profile(
        user.user_id, first_name=body.first_name, last_name=body.last_name
    )


@router.post("/api/v1/users/me/password", status_code=status.HTTP_204_NO_CONTENT, tags=["users"])
async def change_password(body: ChangePasswordRequest, user: CurrentUser, service: Service) -> None:
    await service.change_password(
        user.user_id,
        user.claims.get("sid"),
        body.current_password.get_secret_value(),
        body.new_password.get_secret_value(),
    )


@router.get("/.well-known/jwks.json", tags=["auth"])
async def jwks(service: Service, response: Response) -> Jwks:
    response.headers["Cache-Control"] = JWKS_CACHE_CONTROL
    return Jwks.model_validate(service.keyring.jwks())
