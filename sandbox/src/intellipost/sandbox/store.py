"""The sandbox's in-memory state and MercadoLibre's rules over it (OAuth, pictures, items).

Everything lives in this process and is gone when it stops: the sandbox is a stand-in for
development and tests, not a marketplace. Handlers run on one event loop and no method
awaits, so each call is atomic without locks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from intellipost.sandbox import catalog
from intellipost.sandbox.config import SandboxConfig
from intellipost.sandbox.errors import ApiError, OAuthError, cause, invalid_token, not_found
from intellipost.sandbox.images import sniff

CODE_TTL_SECONDS = 600
SCOPES = "offline_access read write"
MAX_PICTURE_BYTES = 10 * 1024 * 1024
MAX_DESCRIPTION_LENGTH = 50000
ITEM_STATUSES = ("active", "paused", "closed")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class User:
    id: int
    nickname: str
    site_id: str
    registered: str = field(default_factory=now_iso)

    def public(self, base_url: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "nickname": self.nickname,
            "registration_date": self.registered,
            "first_name": "Test",
            "last_name": "Seller",
            "country_id": {"MLA": "AR", "MLB": "BR", "MLM": "MX", "MLC": "CL", "MCO": "CO"}[
                self.site_id
            ],
            "email": f"{self.nickname.lower()}@testuser.com",
            "user_type": "normal",
            "site_id": self.site_id,
            "permalink": f"{base_url}/perfil/{self.nickname}",
            "seller_reputation": {"level_id": None, "power_seller_status": None},
            "status": {"site_status": "active"},
        }


@dataclass
class AuthCode:
    client_id: str
    redirect_uri: str
    user_id: int
    challenge: str | None
    method: str | None
    expires_at: float


@dataclass
class Grant:
    """An access token or a refresh token: whose it is and for which app."""

    client_id: str
    user_id: int
    expires_at: float | None = None


@dataclass
class Picture:
    id: str
    user_id: int
    content: bytes
    content_type: str
    width: int
    height: int


def _slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-")[:60] or "item"


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.base_url = config.public_url.rstrip("/")
        self.users: dict[int, User] = {}
        self.codes: dict[str, AuthCode] = {}
        self.access_tokens: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, Grant] = {}
        self.pictures: dict[str, Picture] = {}
        self.items: dict[str, dict[str, Any]] = {}
        self.descriptions: dict[str, dict[str, Any]] = {}
        self._user_ids = itertools.count(1_200_000_001)
        self._item_numbers = itertools.count(1_500_000_001)
        self._picture_numbers = itertools.count(600_001)

    # --- OAuth ------------------------------------------------------------------------

    def check_client(self, client_id: str) -> bool:
        return hmac.compare_digest(client_id, self.config.client_id)

    def user_for(self, nickname: str, site_id: str) -> User:
        for user in self.users.values():
            if user.nickname == nickname and user.site_id == site_id:
                return user
        user = User(next(self._user_ids), nickname, site_id)
        self.users[user.id] = user
        return user

    def issue_code(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        user: User,
        challenge: str | None,
        method: str | None,
    ) -> str:
        code = f"TG-{secrets.token_hex(12)}-{user.id}"
        self.codes[code] = AuthCode(
            client_id, redirect_uri, user.id, challenge, method, time.time() + CODE_TTL_SECONDS
        )
        return code

    def _authenticate_client(self, client_id: str, client_secret: str) -> None:
        expected = self.config.client_secret.get_secret_value()
        if not self.check_client(client_id) or not hmac.compare_digest(client_secret, expected):
            raise OAuthError("invalid_client", "invalid client_id or client_secret")

    def exchange_code(
        self,
        *,
        client_id: str,
        client_secret: str,
        code: str,
        redirect_uri: str,
        code_verifier: str | None,
    ) -> dict[str, Any]:
        self._authenticate_client(client_id, client_secret)
        # A code is single-use whatever the outcome of this attempt.
        grant = self.codes.pop(code, None)
        if grant is None or grant.expires_at < time.time() or grant.client_id != client_id:
            raise OAuthError(
                "invalid_grant",
                "Error validating grant. Your authorization code "
                "or refresh token may be expired or it was already used",
            )
        if grant.redirect_uri != redirect_uri:
            raise OAuthError("invalid_grant", "the redirect_uri does not match the original one")
        if grant.challenge is not None:
            if not code_verifier:
                raise OAuthError("invalid_grant", "code_verifier is required")
            computed = pkce_challenge(code_verifier) if grant.method == "S256" else code_verifier
            if not hmac.compare_digest(computed, grant.challenge):
                raise OAuthError("invalid_grant", "code_verifier does not match the challenge")
        elif code_verifier:
            raise OAuthError("invalid_grant", "no code_challenge was sent for this code")
        return self._tokens(client_id, grant.user_id)

    def refresh(self, *, client_id: str, client_secret: str, refresh_token: str) -> dict[str, Any]:
        self._authenticate_client(client_id, client_secret)
        # Single use: the old refresh token stops working the moment it is presented.
        grant = self.refresh_tokens.pop(refresh_token, None)
        if grant is None or grant.client_id != client_id:
            raise OAuthError(
                "invalid_grant",
                "Error validating grant. Your authorization code "
                "or refresh token may be expired or it was already used",
            )
        return self._tokens(client_id, grant.user_id)

    def _tokens(self, client_id: str, user_id: int) -> dict[str, Any]:
        ttl = self.config.access_token_ttl_seconds
        day = datetime.now(UTC).strftime("%m%d%y")
        access = f"APP_USR-{client_id}-{day}-{secrets.token_hex(16)}-{user_id}"
        refresh = f"TG-{secrets.token_hex(12)}-{user_id}"
        self.access_tokens[access] = Grant(client_id, user_id, time.time() + ttl)
        self.refresh_tokens[refresh] = Grant(client_id, user_id)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": SCOPES,
            "user_id": user_id,
            "refresh_token": refresh,
        }

    def grant_for(self, authorization: str | None) -> Grant | None:
        """The grant behind a ``Bearer`` header, None when absent; invalid ones raise 401."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            raise invalid_token()
        grant = self.access_tokens.get(token.strip())
        if grant is None or (grant.expires_at is not None and grant.expires_at < time.time()):
            raise invalid_token()
        return grant

    def user_of(self, authorization: str | None) -> User:
        grant = self.grant_for(authorization)
        if grant is None:
            raise ApiError(401, "unauthorized", "authorization value not present")
        return self.users[grant.user_id]

    # --- Pictures ---------------------------------------------------------------------

    def upload_picture(self, user: User, content: bytes) -> dict[str, Any]:
        if not content:
            raise ApiError(
                400,
                "bad_request",
                "file is empty",
                [cause("picture.empty", "The file is empty", "file")],
            )
        if len(content) > MAX_PICTURE_BYTES:
            raise ApiError(
                400,
                "bad_request",
                "file too large",
                [cause("picture.size.invalid", "Pictures can be up to 10 MB", "file")],
            )
        sniffed = sniff(content)
        if sniffed is None:
            raise ApiError(
                400,
                "bad_request",
                "invalid picture format",
                [
                    cause(
                        "picture.format.invalid",
                        "Only JPG, JPEG and PNG pictures are accepted",
                        "file",
                    )
                ],
            )
        content_type, width, height = sniffed
        stamp = datetime.now(UTC).strftime("%m%Y")
        picture_id = (
            f"{next(self._picture_numbers)}-{user.site_id}{secrets.randbelow(10**11)}_{stamp}"
        )
        self.pictures[picture_id] = Picture(
            picture_id, user.id, content, content_type, width, height
        )
        return self.picture_json(picture_id)

    def picture_json(self, picture_id: str) -> dict[str, Any]:
        picture = self.pictures[picture_id]
        ext = "png" if picture.content_type == "image/png" else "jpg"
        url = f"{self.base_url}/pictures/{picture_id}-O.{ext}"
        size = f"{picture.width}x{picture.height}"
        return {
            "id": picture_id,
            "max_size": size,
            "variations": [{"size": size, "url": url, "secure_url": url}],
        }

    # --- Items ------------------------------------------------------------------------

    def create_item(self, user: User, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "body.invalid", "body is not a JSON object")
        causes = self._validate_new_item(user, body)
        if causes:
            raise ApiError(400, "validation_error", "Validation error", causes)
        site = user.site_id
        number = next(self._item_numbers)
        item_id = f"{site}{number}"
        title = body["title"].strip()
        stamp = now_iso()
        item = {
            "id": item_id,
            "site_id": site,
            "title": title,
            "seller_id": user.id,
            "category_id": body["category_id"],
            "price": body["price"],
            "base_price": body["price"],
            "currency_id": body["currency_id"],
            "initial_quantity": body["available_quantity"],
            "available_quantity": body["available_quantity"],
            "sold_quantity": 0,
            "buying_mode": body["buying_mode"],
            "listing_type_id": body["listing_type_id"],
            "condition": body["condition"],
            "permalink": f"{self.base_url}/articulo/{site}-{number}-{_slug(title)}-_JM",
            "pictures": self._pictures_json(body.get("pictures") or []),
            "attributes": self._attributes_json(body["category_id"], body.get("attributes") or []),
            "descriptions": [],
            "status": "active",
            "date_created": stamp,
            "last_updated": stamp,
        }
        item["thumbnail"] = item["pictures"][0]["url"] if item["pictures"] else None
        self.items[item_id] = item
        return item

    def _validate_new_item(self, user: User, body: dict[str, Any]) -> list[dict[str, Any]]:
        causes: list[dict[str, Any]] = []
        category_id = body.get("category_id")
        found = catalog.leaf(category_id) if isinstance(category_id, str) else None
        if found is None:
            causes.append(
                cause(
                    "item.category_id.invalid",
                    f"Category {category_id} does not exist or does not allow listings",
                    "item.category_id",
                )
            )
        elif found[0] != user.site_id:
            causes.append(
                cause(
                    "item.category_id.invalid",
                    f"Category {category_id} is not of the seller's site {user.site_id}",
                    "item.category_id",
                )
            )
        leaf = found[1] if found else None
        for name in (
            "title",
            "price",
            "currency_id",
            "available_quantity",
            "buying_mode",
            "listing_type_id",
            "condition",
        ):
            if body.get(name) is None:
                causes.append(
                    cause(f"item.{name}.missing", f"The field {name} is required", f"item.{name}")
                )
        causes.extend(self._validate_fields(user, body, leaf))
        if leaf is not None:
            given = {
                a.get("id")
                for a in body.get("attributes") or []
                if isinstance(a, dict) and (a.get("value_name") or a.get("value_id"))
            }
            missing = [a.id for a in leaf.attributes if a.required and a.id not in given]
            if missing:
                causes.append(
                    cause(
                        "item.attributes.missing_required",
                        f"The attributes [{', '.join(missing)}] are required for category "
                        f"{category_id}. Check the attribute is present in the attributes list.",
                        "item.attributes",
                    )
                )
        return causes

    def _validate_fields(
        self, user: User, body: dict[str, Any], leaf: catalog.Leaf | None
    ) -> list[dict[str, Any]]:
        """Checks that apply to creation and to updates (only of the fields present)."""
        causes: list[dict[str, Any]] = []
        if "title" in body and body["title"] is not None:
            title = body["title"]
            limit = leaf.max_title_length if leaf else 60
            if not isinstance(title, str) or not title.strip():
                causes.append(cause("item.title.invalid", "Title is invalid", "item.title"))
            elif len(title.strip()) > limit:
                causes.append(
                    cause(
                        "item.title.length.invalid",
                        f"Title length must be {limit} characters or fewer",
                        "item.title",
                    )
                )
        price = body.get("price")
        if (
            "price" in body
            and price is not None
            and (isinstance(price, bool) or not isinstance(price, int | float) or price <= 0)
        ):
            causes.append(
                cause("item.price.invalid", "Price must be a positive number", "item.price")
            )
        currency = body.get("currency_id")
        if currency is not None and currency != catalog.SITES[user.site_id][0]:
            causes.append(
                cause(
                    "item.currency_id.invalid",
                    f"Currency {currency} is not valid for site {user.site_id}",
                    "item.currency_id",
                )
            )
        quantity = body.get("available_quantity")
        if quantity is not None and (
            isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0
        ):
            causes.append(
                cause(
                    "item.available_quantity.invalid",
                    "available_quantity must be a whole number",
                    "item.available_quantity",
                )
            )
        checks = (
            ("buying_mode", catalog.BUYING_MODES),
            ("listing_type_id", catalog.LISTING_TYPES),
            ("condition", catalog.CONDITIONS),
            ("status", ITEM_STATUSES),
        )
        for name, allowed in checks:
            value = body.get(name)
            if value is not None and value not in allowed:
                causes.append(
                    cause(
                        f"item.{name}.invalid",
                        f"{name} must be one of {', '.join(allowed)}",
                        f"item.{name}",
                    )
                )
        if body.get("pictures") is not None:
            causes.extend(self._validate_pictures(user, body["pictures"], leaf))
        attributes = body.get("attributes")
        if attributes is not None and (
            not isinstance(attributes, list)
            or not all(isinstance(a, dict) and isinstance(a.get("id"), str) for a in attributes)
        ):
            causes.append(
                cause(
                    "item.attributes.invalid",
                    "attributes must be a list of {id, value_name}",
                    "item.attributes",
                )
            )
        return causes

    def _validate_pictures(
        self, user: User, pictures: Any, leaf: catalog.Leaf | None
    ) -> list[dict[str, Any]]:
        if not isinstance(pictures, list):
            return [cause("item.pictures.invalid", "pictures must be a list", "item.pictures")]
        limit = leaf.max_pictures_per_item if leaf else 12
        causes = []
        if len(pictures) > limit:
            causes.append(
                cause("item.pictures.max", f"Up to {limit} pictures are allowed", "item.pictures")
            )
        for i, picture in enumerate(pictures):
            picture_id = picture.get("id") if isinstance(picture, dict) else None
            source = picture.get("source") if isinstance(picture, dict) else None
            if picture_id is not None:
                owned = self.pictures.get(picture_id)
                if owned is None or owned.user_id != user.id:
                    causes.append(
                        cause(
                            "item.pictures.invalid",
                            f"Picture {picture_id} does not exist",
                            f"item.pictures[{i}].id",
                        )
                    )
            elif not (isinstance(source, str) and source.startswith(("http://", "https://"))):
                causes.append(
                    cause(
                        "item.pictures.invalid",
                        "Each picture needs an uploaded id or a source URL",
                        f"item.pictures[{i}]",
                    )
                )
        return causes

    def _pictures_json(self, pictures: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for picture in pictures:
            if picture.get("id") in self.pictures:
                info = self.picture_json(picture["id"])
                url = info["variations"][0]["url"]
                out.append(
                    {
                        "id": info["id"],
                        "url": url,
                        "secure_url": url,
                        "size": info["max_size"],
                        "max_size": info["max_size"],
                        "quality": "",
                    }
                )
            else:
                out.append(
                    {
                        "id": None,
                        "url": picture["source"],
                        "secure_url": picture["source"],
                        "size": "",
                        "max_size": "",
                        "quality": "",
                    }
                )
        return out

    def _attributes_json(
        self, category_id: str, attributes: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        found = catalog.leaf(category_id)
        names = {a.id: a.name[0] for a in found[1].attributes} if found else {}
        return [
            {
                "id": a["id"],
                "name": names.get(a["id"], a["id"]),
                "value_id": a.get("value_id"),
                "value_name": a.get("value_name"),
            }
            for a in attributes
        ]

    def item(self, item_id: str) -> dict[str, Any]:
        item = self.items.get(item_id)
        if item is None:
            raise not_found(f"Item with id {item_id} not found")
        return item

    def _owned_item(self, user: User, item_id: str) -> dict[str, Any]:
        item = self.item(item_id)
        if item["seller_id"] != user.id:
            raise ApiError(403, "forbidden", "The caller is not the owner of the item")
        return item

    def update_item(self, user: User, item_id: str, body: Any) -> dict[str, Any]:
        item = self._owned_item(user, item_id)
        if not isinstance(body, dict):
            raise ApiError(400, "body.invalid", "body is not a JSON object")
        if item["status"] == "closed":
            raise ApiError(
                400,
                "validation_error",
                "Item is closed",
                [cause("item.status.closed", "A closed item cannot be modified", "item.status")],
            )
        updatable = {"title", "price", "available_quantity", "pictures", "attributes", "status"}
        unknown = sorted(set(body) - updatable)
        causes = [
            cause("item.field.not_modifiable", f"Field {name} cannot be modified", f"item.{name}")
            for name in unknown
        ]
        found = catalog.leaf(item["category_id"])
        causes.extend(self._validate_fields(user, body, found[1] if found else None))
        if causes:
            raise ApiError(400, "validation_error", "Validation error", causes)
        for name in ("title", "price", "available_quantity", "status"):
            if body.get(name) is not None:
                item[name] = body[name].strip() if name == "title" else body[name]
        if body.get("pictures") is not None:
            item["pictures"] = self._pictures_json(body["pictures"])
            item["thumbnail"] = item["pictures"][0]["url"] if item["pictures"] else None
        if body.get("attributes") is not None:
            item["attributes"] = self._attributes_json(item["category_id"], body["attributes"])
        item["last_updated"] = now_iso()
        return item

    def set_description(
        self, user: User, item_id: str, body: Any, *, replace: bool
    ) -> dict[str, Any]:
        item = self._owned_item(user, item_id)
        text = body.get("plain_text") if isinstance(body, dict) else None
        if not isinstance(text, str):
            raise ApiError(
                400,
                "validation_error",
                "Validation error",
                [
                    cause(
                        "item.description.plain_text.invalid",
                        "plain_text is required",
                        "description.plain_text",
                    )
                ],
            )
        if len(text) > MAX_DESCRIPTION_LENGTH:
            raise ApiError(
                400,
                "validation_error",
                "Validation error",
                [
                    cause(
                        "item.description.length.invalid",
                        f"The description may have up to {MAX_DESCRIPTION_LENGTH} characters",
                        "description.plain_text",
                    )
                ],
            )
        existing = self.descriptions.get(item_id)
        if existing is not None and not replace:
            raise ApiError(
                400,
                "validation_error",
                "Item already has a description, use PUT",
                [
                    cause(
                        "item.description.already_exists",
                        "The item already has a description; update it with PUT",
                        "description",
                    )
                ],
            )
        stamp = now_iso()
        description = {
            "text": "",
            "plain_text": text,
            "last_updated": stamp,
            "date_created": existing["date_created"] if existing else stamp,
            "snapshot": {
                "url": f"{self.base_url}/descriptions/{item_id}",
                "width": 0,
                "height": 0,
                "status": "",
            },
        }
        self.descriptions[item_id] = description
        item["descriptions"] = [{"id": f"{item_id}-{int(time.time())}"}]
        return description

    def description(self, item_id: str) -> dict[str, Any]:
        self.item(item_id)
        found = self.descriptions.get(item_id)
        if found is None:
            raise not_found(f"Description of item {item_id} not found")
        return found
