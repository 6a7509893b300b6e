"""Rules of the mercadolibre service: connecting accounts, keeping tokens fresh, categories,
and publishing listings exactly once per Idempotency-Key."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import orjson

from intellipost.mercadolibre.client import MercadoLibreClient, MercadoLibreError
from intellipost.mercadolibre.config import MercadoLibreConfig
from intellipost.mercadolibre.crypto import TokenCipher, TokenDecryptError
from intellipost.mercadolibre.locks import Locks, LockTimeoutError
from intellipost.mercadolibre.models import Connection, Listing
from intellipost.mercadolibre.pictures import PictureData, PictureLoader
from intellipost.mercadolibre.repository import ConnectionRepository, ListingRepository, utcnow
from intellipost.mercadolibre.schemas import (
    AttributeRef,
    Candidate,
    CategoryRef,
    ConnectOut,
    ListingDetail,
    ListingIn,
    ListingOut,
    SuggestedAttribute,
)
from intellipost.mercadolibre.sites import SITES, authorization_base
from intellipost.shared.errors import ProblemError
from intellipost.shared.kv import KeyValueStore
from intellipost.shared.logging import get_structured_logger

log = get_structured_logger("mercadolibre")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def not_connected() -> ProblemError:
    return ProblemError(
        409,
        "Connect a MercadoLibre account first (GET /api/v1/mercadolibre/connect).",
        title="MercadoLibre account not connected",
        slug="mercadolibre-not-connected",
    )


def reconnect_required() -> ProblemError:
    return ProblemError(
        409,
        "MercadoLibre no longer accepts this account's authorization; connect it again.",
        title="MercadoLibre reconnection required",
        slug="mercadolibre-reconnect-required",
    )


class ConnectionService:
    """The OAuth flow (authorization code + PKCE) and the account's tokens."""

    def __init__(
        self,
        config: MercadoLibreConfig,
        repository: ConnectionRepository,
        states: KeyValueStore,
        client: MercadoLibreClient,
        cipher: TokenCipher,
        locks: Locks,
    ) -> None:
        self.config = config
        self.repository = repository
        self.states = states
        self.client = client
        self.cipher = cipher
        self.locks = locks

    async def connect(self, user_id: str, site: str) -> ConnectOut:
        """The authorization URL; state and PKCE verifier wait in the store, bound to the user."""
        state = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        record = {"user_id": user_id, "site": site, "verifier": verifier}
        ttl = self.config.oauth_state_ttl_seconds
        await self.states.set(f"oauth-state:{_digest(state)}", orjson.dumps(record), ttl)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": self.config.redirect_uri,
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        base = authorization_base(
            site, api_base_url=self.config.api_base_url, auth_base_url=self.config.auth_base_url
        )
        return ConnectOut(
            authorization_url=f"{base}/authorization?{query}", state=state, expires_in=ttl
        )

    async def callback(
        self, *, code: str | None, state: str | None, error: str | None
    ) -> Connection:
        """Where the seller's browser returns: the state says who, and is good only once."""
        raw = await self.states.pop(f"oauth-state:{_digest(state)}") if state else None
        if raw is None:
            log.security_event(
                "oauth_state_rejected",
                "medium",
                reason="missing" if not state else "unknown, reused or expired",
            )
            raise ProblemError(
                400,
                "The authorization link is unknown, expired or already used; start again.",
                title="Invalid OAuth state",
                slug="invalid-oauth-state",
            )
        record = orjson.loads(raw)
        user_id: str = record["user_id"]
        if error or not code:
            log.info("MercadoLibre authorization not granted", user_id=user_id, error=error)
            raise ProblemError(
                400,
                f"MercadoLibre did not grant access ({error or 'no code'}).",
                title="Authorization not granted",
                slug="authorization-denied",
            )
        try:
            tokens = await self.client.exchange_code(
                code, verifier=record["verifier"], redirect_uri=self.config.redirect_uri
            )
        except MercadoLibreError as exc:
            if exc.status not in (400, 401):
                raise
            log.security_event("oauth_code_rejected", "medium", user_id=user_id, error=exc.error)
            raise ProblemError(
                400,
                f"MercadoLibre refused the authorization code ({exc.error}); start again.",
                title="Authorization code rejected",
                slug="authorization-code-rejected",
            ) from exc
        me = await self.client.me(tokens.access_token)
        now = utcnow()
        connection = Connection(
            user_id=user_id,
            ml_user_id=int(me.get("id") or tokens.user_id),
            site_id=str(me.get("site_id") or record["site"]),
            nickname=str(me.get("nickname") or ""),
            scopes=tokens.scope,
            access_token=self._seal(user_id, "access", tokens.access_token),
            refresh_token=self._seal(user_id, "refresh", tokens.refresh_token),
            access_expires_at=now + timedelta(seconds=tokens.expires_in),
            status="active",
            connected_at=now,
            refreshed_at=None,
        )
        saved = await self.repository.save(connection)
        log.audit(
            "mercadolibre_connected",
            f"mercadolibre-account:{connection.ml_user_id}",
            user_id=user_id,
            site=connection.site_id,
        )
        return saved

    async def get(self, user_id: str) -> Connection | None:
        return await self.repository.get(user_id)

    async def disconnect(self, user_id: str) -> bool:
        removed = await self.repository.delete(user_id)
        if removed:
            log.audit("mercadolibre_disconnected", "mercadolibre-account", user_id=user_id)
        return removed

    def _seal(self, user_id: str, kind: str, token: str) -> str:
        return self.cipher.encrypt(token, context=f"{user_id}:{kind}")

    def _open(self, connection: Connection, kind: str) -> str:
        value = connection.access_token if kind == "access" else connection.refresh_token
        try:
            return self.cipher.decrypt(value, context=f"{connection.user_id}:{kind}")
        except TokenDecryptError as exc:
            log.error("stored MercadoLibre token does not decrypt", user_id=connection.user_id)
            raise reconnect_required() from exc

    def _due(self, connection: Connection) -> bool:
        margin = timedelta(seconds=self.config.token_refresh_margin_seconds)
        return connection.access_expires_at - margin <= utcnow()

    async def access_token(self, user_id: str) -> tuple[str, Connection]:
        """A usable access token, refreshed first when it is near expiry.

        The refresh token is single-use, so only one replica may spend it: the refresh runs
        under a fleet-wide lock, and whoever gets the lock re-reads the row first, because
        another replica may have refreshed while it waited.
        """
        connection = await self._active(user_id)
        if not self._due(connection):
            return self._open(connection, "access"), connection
        try:
            async with self.locks.hold(
                f"refresh:{user_id}",
                ttl_seconds=self.config.refresh_lock_seconds,
                wait_seconds=self.config.refresh_lock_seconds,
            ):
                connection = await self._active(user_id)
                if not self._due(connection):
                    return self._open(connection, "access"), connection
                access = await self._refresh(connection)
        except LockTimeoutError:
            # Someone else is still refreshing; the current token may well still work.
            if connection.access_expires_at > utcnow():
                return self._open(connection, "access"), connection
            raise
        return access, await self._active(user_id)

    async def _active(self, user_id: str) -> Connection:
        connection = await self.repository.get(user_id)
        if connection is None:
            raise not_connected()
        if connection.status != "active":
            raise reconnect_required()
        return connection

    async def _refresh(self, connection: Connection) -> str:
        """Spend the refresh token; the new access token."""
        user_id = connection.user_id
        try:
            tokens = await self.client.refresh(self._open(connection, "refresh"))
        except MercadoLibreError as exc:
            if exc.status not in (400, 401):
                raise
            latest = await self.repository.get(user_id)
            if (
                latest is not None
                and latest.status == "active"
                and latest.refresh_token != connection.refresh_token
            ):
                # Another replica refreshed first (its lock had run out): use what it stored.
                return self._open(latest, "access")
            await self.repository.mark_revoked(user_id)
            log.security_event(
                "mercadolibre_refresh_refused", "medium", user_id=user_id, error=exc.error
            )
            raise reconnect_required() from exc
        await self.repository.update_tokens(
            user_id,
            access_token=self._seal(user_id, "access", tokens.access_token),
            refresh_token=self._seal(user_id, "refresh", tokens.refresh_token),
            access_expires_at=utcnow() + timedelta(seconds=tokens.expires_in),
            scopes=tokens.scope,
        )
        log.info("MercadoLibre token refreshed", user_id=user_id, expires_in=tokens.expires_in)
        return tokens.access_token

    async def token_if_connected(self, user_id: str) -> str | None:
        """The user's token for calls that also work without one (category search)."""
        try:
            token, _ = await self.access_token(user_id)
        except ProblemError:
            return None
        return token


class CategoryService:
    """Category prediction and each category's rules, cached (they rarely change)."""

    def __init__(
        self, config: MercadoLibreConfig, client: MercadoLibreClient, cache: KeyValueStore
    ) -> None:
        self.config = config
        self.client = client
        self.cache = cache

    async def info(self, category_id: str) -> dict[str, Any]:
        """Name, path, settings and attributes of a category (MercadoLibreError 404 if none)."""
        key = f"category:{category_id}"
        cached = await self.cache.get(key)
        if cached is not None:
            found: dict[str, Any] = orjson.loads(cached)
            return found
        category, attributes = await asyncio.gather(
            self.client.category(category_id), self.client.category_attributes(category_id)
        )
        settings = category.get("settings") or {}
        info = {
            "id": category.get("id", category_id),
            "name": category.get("name", ""),
            "path_from_root": [
                {"id": p.get("id"), "name": p.get("name")}
                for p in category.get("path_from_root") or []
            ],
            "listing_allowed": bool(settings.get("listing_allowed", True)),
            "max_title_length": int(settings.get("max_title_length") or 60),
            "max_pictures_per_item": int(settings.get("max_pictures_per_item") or 12),
            "currencies": list(settings.get("currencies") or []),
            "required_attributes": [
                {"id": a["id"], "name": a.get("name", a["id"])}
                for a in attributes
                if isinstance(a, dict) and (a.get("tags") or {}).get("required")
            ],
        }
        if self.config.category_cache_seconds:
            await self.cache.set(key, orjson.dumps(info), self.config.category_cache_seconds)
        return info

    async def predict(
        self, title: str, site: str, *, limit: int, token: str | None
    ) -> list[Candidate]:
        found = await self.client.domain_discovery(site, title, limit=limit, token=token)
        unique: dict[str, dict[str, Any]] = {}
        for entry in found:
            category_id = entry.get("category_id")
            if isinstance(category_id, str) and category_id not in unique:
                unique[category_id] = entry
        infos = await asyncio.gather(*(self.info(cid) for cid in unique))
        return [
            Candidate(
                category_id=cid,
                category_name=str(entry.get("category_name") or info["name"]),
                domain_id=entry.get("domain_id"),
                domain_name=entry.get("domain_name"),
                path_from_root=[CategoryRef(**p) for p in info["path_from_root"]],
                required_attributes=[AttributeRef(**a) for a in info["required_attributes"]],
                suggested_attributes=[
                    SuggestedAttribute(
                        id=a["id"], value_id=a.get("value_id"), value_name=a.get("value_name")
                    )
                    for a in entry.get("attributes") or []
                    if isinstance(a, dict) and "id" in a
                ],
                max_title_length=info["max_title_length"],
                max_pictures_per_item=info["max_pictures_per_item"],
            )
            for (cid, entry), info in zip(unique.items(), infos, strict=True)
        ]


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _fingerprint(body: ListingIn) -> str:
    return hashlib.sha256(
        orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    ).hexdigest()


def _invalid_listing(field: str, detail: str) -> ProblemError:
    return ProblemError(
        422,
        detail,
        title="Request validation failed",
        slug="validation-error",
        errors=[{"loc": ["body", field], "field": field, "message": detail, "type": "value"}],
    )


class ListingService:
    """Publishing: pictures, then the item, then its description; once per Idempotency-Key."""

    def __init__(
        self,
        config: MercadoLibreConfig,
        repository: ListingRepository,
        connections: ConnectionService,
        categories: CategoryService,
        client: MercadoLibreClient,
        pictures: PictureLoader,
        locks: Locks,
    ) -> None:
        self.config = config
        self.repository = repository
        self.connections = connections
        self.categories = categories
        self.client = client
        self.pictures = pictures
        self.locks = locks

    async def publish(self, user_id: str, key: str, body: ListingIn) -> tuple[ListingOut, bool]:
        """The listing and whether it is a replay of an earlier request with this key."""
        fingerprint = _fingerprint(body)
        existing = await self.repository.by_key(user_id, key)
        if existing is not None:
            self._same_request(existing, fingerprint)
            if existing.state == "published":
                return self._out(existing), True
        lock = f"publish:{user_id}:{_digest(key)}"
        try:
            async with self.locks.hold(
                lock, ttl_seconds=self.config.publish_lock_seconds, wait_seconds=0
            ):
                return await self._publish(user_id, key, fingerprint, body)
        except LockTimeoutError as exc:
            if exc.args != (lock,):
                raise
            raise self._in_progress() from exc

    @staticmethod
    def _in_progress() -> ProblemError:
        return ProblemError(
            409,
            "A request with this Idempotency-Key is still being processed; retry shortly.",
            title="Request in progress",
            slug="idempotency-key-in-use",
            headers={"Retry-After": "1"},
        )

    @staticmethod
    def _same_request(listing: Listing, fingerprint: str) -> None:
        if listing.request_hash != fingerprint:
            raise ProblemError(
                422,
                "This Idempotency-Key was used with a different request body.",
                title="Idempotency-Key reused",
                slug="idempotency-key-reused",
            )

    @staticmethod
    def _out(listing: Listing) -> ListingOut:
        assert listing.item_id is not None
        return ListingOut(
            item_id=listing.item_id,
            permalink=listing.permalink,
            status=listing.item_status,
            product_id=listing.product_id,
        )

    async def _publish(
        self, user_id: str, key: str, fingerprint: str, body: ListingIn
    ) -> tuple[ListingOut, bool]:
        listing = await self.repository.by_key(user_id, key)
        if listing is not None:
            self._same_request(listing, fingerprint)
            if listing.state == "published":
                return self._out(listing), True
        token, connection = await self.connections.access_token(user_id)
        pictures: list[PictureData] | None = None
        if listing is None:
            # Everything that can be refused without side effects is checked first.
            await self._check(body, connection.site_id)
            pictures = await self.pictures.load(body.pictures)
            now = utcnow()
            claimed = await self.repository.claim(
                Listing(
                    id=str(uuid.uuid4()),
                    user_id=user_id,
                    idempotency_key=key,
                    request_hash=fingerprint,
                    product_id=body.product_id,
                    site_id=connection.site_id,
                    state="pending",
                    description_posted=False,
                    created_at=now,
                    updated_at=now,
                )
            )
            if claimed is None:
                raise self._in_progress()
            listing = claimed
        if listing.picture_ids is None:
            pictures = pictures or await self.pictures.load(body.pictures)
            ids = [await self._upload(token, picture) for picture in pictures]
            await self.repository.record(listing.id, picture_ids=ids)
            listing.picture_ids = ids
        if listing.item_id is None:
            try:
                item = await self.client.create_item(token, self._item(body, listing.picture_ids))
            except MercadoLibreError:
                # Refused outright: nothing was listed, so the key is free to use again.
                await self.repository.delete(listing.id)
                raise
            listing.item_id = str(item["id"])
            listing.permalink = item.get("permalink")
            listing.item_status = item.get("status")
            await self.repository.record(
                listing.id,
                item_id=listing.item_id,
                permalink=listing.permalink,
                item_status=listing.item_status,
            )
            log.audit(
                "mercadolibre_item_created",
                f"mercadolibre-item:{listing.item_id}",
                user_id=user_id,
                product_id=body.product_id,
            )
        if not listing.description_posted:
            if body.description.strip():
                await self.client.set_description(token, listing.item_id, body.description)
            await self.repository.record(listing.id, description_posted=True, state="published")
            listing.state = "published"
        return self._out(listing), False

    async def _check(self, body: ListingIn, site: str) -> None:
        if not body.category_id.startswith(site):
            raise _invalid_listing(
                "category_id", f"Category {body.category_id} is not of the account's site {site}."
            )
        if body.currency != SITES[site].currency:
            raise _invalid_listing(
                "currency", f"Site {site} lists in {SITES[site].currency}, not {body.currency}."
            )
        try:
            info = await self.categories.info(body.category_id)
        except MercadoLibreError as exc:
            if exc.status != 404:
                raise
            raise _invalid_listing(
                "category_id", f"Category {body.category_id} does not exist."
            ) from exc
        if not info["listing_allowed"]:
            raise _invalid_listing(
                "category_id",
                f"Category {body.category_id} does not take listings; choose a leaf category.",
            )
        if len(body.title) > info["max_title_length"]:
            raise _invalid_listing(
                "title",
                f"Title is {len(body.title)} characters; category {body.category_id} allows "
                f"{info['max_title_length']}.",
            )
        if len(body.pictures) > info["max_pictures_per_item"]:
            raise _invalid_listing(
                "pictures",
                f"Category {body.category_id} allows {info['max_pictures_per_item']} pictures.",
            )

    async def _upload(self, token: str, picture: PictureData) -> str:
        uploaded = await self.client.upload_picture(
            token, picture.content, filename=picture.filename, content_type=picture.content_type
        )
        return str(uploaded["id"])

    @staticmethod
    def _item(body: ListingIn, picture_ids: list[str]) -> dict[str, Any]:
        return {
            "title": body.title,
            "category_id": body.category_id,
            "price": _number(body.price),
            "currency_id": body.currency,
            "available_quantity": body.quantity,
            "buying_mode": "buy_it_now",
            "listing_type_id": body.listing_type,
            "condition": body.condition,
            "pictures": [{"id": picture_id} for picture_id in picture_ids],
            "attributes": [a.model_dump(exclude_none=True) for a in body.attributes],
        }

    async def get(self, user_id: str, item_id: str) -> ListingDetail:
        listing = await self.repository.by_item(user_id, item_id)
        if listing is None:
            raise ProblemError(404, f"No listing {item_id} of yours.", slug="listing-not-found")
        token, _ = await self.connections.access_token(user_id)
        item = await self.client.get_item(token, item_id)
        return ListingDetail(
            item_id=item_id,
            permalink=item.get("permalink") or listing.permalink,
            status=item.get("status"),
            product_id=listing.product_id,
            site_id=item.get("site_id"),
            title=item.get("title"),
            category_id=item.get("category_id"),
            price=item.get("price"),
            currency=item.get("currency_id"),
            available_quantity=item.get("available_quantity"),
            condition=item.get("condition"),
            listing_type=item.get("listing_type_id"),
            pictures=[
                {"id": p.get("id"), "url": p.get("secure_url") or p.get("url")}
                for p in item.get("pictures") or []
            ],
            attributes=[a for a in item.get("attributes") or [] if isinstance(a, dict)],
            created_at=listing.created_at,
        )
