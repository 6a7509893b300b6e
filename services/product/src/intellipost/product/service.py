"""The product service's rules: products from photos, the listing lifecycle, edits, publishing.

Lifecycle::

    processing -> ready | needs_review | failed
    ready | needs_review | failed -> processing (regenerate) | publishing (publish)
    publishing -> published | failed

``ready`` needs a quality score at or above ``ai_confidence_threshold`` with no flag from
the content service; ``needs_review`` is a lower score, a flag, or content the seller
edited. Every transition is one conditional UPDATE, so two requests racing on one product
cannot both move it; the loser gets 409.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from pydantic import ValidationError

from intellipost.product.clients import (
    AiContentClient,
    MercadoLibreClient,
    PeerError,
    PeerRefusalError,
)
from intellipost.product.config import ProductConfig
from intellipost.product.images import ImageRejectedError, ImageRules, ProcessedImage, process
from intellipost.product.models import IdempotencyKey, Product, ProductImage
from intellipost.product.repository import KeyTakenError, ProductRepository
from intellipost.product.schemas import CURRENCIES, MAX_IMAGES, ContentOut, ProductPatch
from intellipost.product.storage import MissingObjectError, Storage, StorageError, image_key
from intellipost.product.tasks import BackgroundWork, utcnow
from intellipost.shared.db import Database
from intellipost.shared.errors import ProblemError
from intellipost.shared.logging import get_structured_logger

log = get_structured_logger("product")

STATUSES = ("processing", "ready", "needs_review", "publishing", "published", "failed")
# What the seller may do from each status (anything else answers 409).
EDITABLE = ("ready", "needs_review", "failed")
REGENERABLE = ("ready", "needs_review", "failed")
PUBLISHABLE = ("ready", "needs_review", "failed")
# While publishing, the MercadoLibre service is fetching the pictures from us.
DELETABLE = tuple(s for s in STATUSES if s != "publishing")
# Images decoded at once in this process: each can take a few hundred MB while it is open.
IMAGE_WORKERS = 2
# Image ids looked up per query by the sweep of orphan files.
SWEEP_BATCH = 500
# The content service sees the photos as thumbnails no larger than this (vision models look
# at 512 px), each inlined only up to a size that keeps 8 of them well inside its body limit.
PREVIEW_EDGE = 512
MAX_PREVIEW_BYTES = 96 * 1024
UNEXPECTED = "An unexpected error stopped the {step}; it has been logged. Retry."


@dataclass(frozen=True, slots=True)
class NewProduct:
    prompt: str
    price: Decimal | None
    quantity: int
    condition: str
    site: str


def _field_error(loc: Sequence[str | int], message: str, type_: str) -> dict[str, Any]:
    parts = [str(p) for p in loc]
    field = ".".join(p for p in parts if p != "body")
    return {"loc": parts, "field": field, "message": message, "type": type_}


def _invalid(detail: str, errors: list[dict[str, Any]]) -> ProblemError:
    return ProblemError(
        422, detail, title="Request validation failed", slug="validation-error", errors=errors
    )


def _not_found(product_id: str) -> ProblemError:
    return ProblemError(404, f"No product {product_id}.", slug="product-not-found")


def _conflict(product: Product, action: str, allowed: Sequence[str]) -> ProblemError:
    return ProblemError(
        409,
        f"The product is {product.status}; {action} needs it {' or '.join(allowed)}.",
        title="Invalid transition",
        slug="invalid-transition",
        product_status=product.status,
    )


def _changed_meanwhile() -> ProblemError:
    return ProblemError(
        409,
        "The product changed while this request was handled; read it again and retry.",
        title="Concurrent change",
        slug="concurrent-change",
    )


def _storage_unavailable(exc: StorageError) -> ProblemError:
    log.error("image storage failed", error=str(exc))
    return ProblemError(
        503,
        "Image storage is unavailable; nothing was changed. Retry shortly.",
        title="Service Unavailable",
        slug="storage-unavailable",
        headers={"Retry-After": "5"},
    )


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(orjson.dumps(parts, default=str)).hexdigest()


def encode_cursor(product: Product) -> str:
    raw = orjson.dumps([product.created_at.isoformat(), product.id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, product_id = orjson.loads(raw)
        moment = datetime.fromisoformat(created)
        if moment.tzinfo is None or not isinstance(product_id, str):
            raise ValueError("not a cursor")
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise _invalid(
            "The cursor is not one this API gave out.",
            [_field_error(["query", "cursor"], "not a valid cursor", "cursor")],
        ) from exc
    return moment, product_id


def _snapshot(body: dict[str, Any], peer: str) -> dict[str, Any]:
    """The parts of a content version the product keeps (a copy; the source stays there)."""
    try:
        return ContentOut.model_validate(body).model_dump(mode="json")
    except ValidationError as exc:
        raise PeerError(f"The {peer} gave an answer of an unexpected shape.") from exc


class ProductService:
    def __init__(
        self,
        config: ProductConfig,
        database: Database,
        storage: Storage,
        work: BackgroundWork,
        ai: AiContentClient,
        mercadolibre: MercadoLibreClient,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.database = database
        self.storage = storage
        self.work = work
        self.ai = ai
        self.mercadolibre = mercadolibre
        self.clock = clock
        self.rules = ImageRules.from_config(config)
        self.key_ttl = timedelta(hours=config.idempotency_key_ttl_hours)
        self._decoders = asyncio.Semaphore(IMAGE_WORKERS)

    # --- reading -------------------------------------------------------------------------

    async def _owned(self, repo: ProductRepository, owner_id: str, product_id: str) -> Product:
        product = await repo.get(product_id)
        if product is None or product.owner_id != owner_id:
            if product is not None:
                # Answered like a missing product, so ids of others' products reveal nothing.
                log.security_event("foreign_product_access", "medium", product_id=product_id)
            raise _not_found(product_id)
        return product

    async def get(self, owner_id: str, product_id: str) -> Product:
        async with self.database.session() as session:
            return await self._owned(ProductRepository(session), owner_id, product_id)

    async def page(
        self, owner_id: str, *, limit: int, status: str | None, cursor: str | None
    ) -> tuple[list[Product], str | None]:
        after = decode_cursor(cursor) if cursor else None
        async with self.database.session() as session:
            rows = await ProductRepository(session).page(
                owner_id, limit=limit + 1, status=status, after=after
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1]) if more else None

    async def image(
        self, owner_id: str, product_id: str, image_id: str, size: str
    ) -> tuple[bytes, str]:
        """The bytes of one rendition of a photo and its file extension."""
        product = await self.get(owner_id, product_id)
        image = next((i for i in product.images if i.id == image_id), None)
        if image is None:
            raise ProblemError(404, f"No image {image_id} in this product.", slug="image-not-found")
        key = image.variants.get(size)
        if key is None:
            raise ProblemError(
                404, f"Image {image_id} has no {size} rendition.", slug="image-not-found"
            )
        try:
            data = await self.storage.get(key)
        except MissingObjectError:
            log.error("image file missing from storage", product_id=product_id, image_id=image_id)
            raise ProblemError(
                404, f"The file of image {image_id} is missing.", slug="image-not-found"
            ) from None
        except StorageError as exc:
            raise _storage_unavailable(exc) from exc
        return data, key.rsplit(".", 1)[-1]

    # --- creating ------------------------------------------------------------------------

    def _check_price(self, price: Decimal | None, loc: list[str]) -> None:
        if price is None:
            return
        low, high = Decimal(str(self.config.min_price)), Decimal(str(self.config.max_price))
        if not low <= price <= high:
            message = f"must be between {low:f} and {high:f}"
            raise _invalid(
                f"Invalid input: price {message}.", [_field_error(loc, message, "range")]
            )

    async def create(
        self,
        owner_id: str,
        new: NewProduct,
        uploads: list[bytes],
        idempotency_key: str | None,
    ) -> tuple[Product, bool]:
        """The new product (``processing``) and whether it is a replay of an earlier request."""
        self._check_price(new.price, ["body", "price"])
        if not 1 <= len(uploads) <= MAX_IMAGES:
            message = f"give 1 to {MAX_IMAGES} images (got {len(uploads)})"
            raise _invalid(
                f"Invalid input: images: {message}.",
                [_field_error(["body", "images"], message, "count")],
            )
        fingerprint = _fingerprint(
            "create",
            new.prompt,
            new.price,
            new.quantity,
            new.condition,
            new.site,
            [hashlib.sha256(data).hexdigest() for data in uploads],
        )
        if idempotency_key is not None:
            replay = await self._replay(owner_id, idempotency_key, fingerprint)
            if replay is not None:
                return replay, True

        processed = await self._process(uploads)
        now = self.clock()
        attempt_id = str(uuid.uuid4())
        product = Product(
            id=str(uuid.uuid4()),
            owner_id=owner_id,
            status="processing",
            prompt=new.prompt,
            site=new.site,
            price=new.price,
            quantity=new.quantity,
            condition=new.condition,
            attempt_id=attempt_id,
            worker_id=self.work.worker_id,
            lease_expires_at=self.work.lease_until(),
            revision=1,
            created_at=now,
            updated_at=now,
        )
        files: list[tuple[str, bytes, str]] = []
        for position, image in enumerate(processed):
            image_id = str(uuid.uuid4())
            variants = {}
            for rendition in image.renditions:
                key = image_key(product.id, image_id, rendition.name, rendition.extension)
                variants[rendition.name] = key
                files.append((key, rendition.data, rendition.content_type))
            product.images.append(
                ProductImage(
                    id=image_id,
                    position=position,
                    format=image.original.format,
                    width=image.width,
                    height=image.height,
                    size_bytes=len(image.original.data),
                    dominant_colors=list(image.dominant_colors),
                    variants=variants,
                    created_at=now,
                )
            )
        key_row = (
            IdempotencyKey(
                id=str(uuid.uuid4()),
                owner_id=owner_id,
                key=idempotency_key,
                fingerprint=fingerprint,
                product_id=product.id,
                created_at=now,
            )
            if idempotency_key is not None
            else None
        )

        written: list[str] = []
        async with self.database.session() as session:
            repo = ProductRepository(session)
            try:
                await repo.add(product, key_row)
            except KeyTakenError:
                assert idempotency_key is not None
                replay = await self._replay(owner_id, idempotency_key, fingerprint)
                if replay is None:
                    raise _changed_meanwhile() from None
                return replay, True
            # The rows are written but not committed: if storing a file or the commit
            # fails, the rows go and so do the files already stored. Nothing half-made stays.
            try:
                for key, data, content_type in files:
                    await self.storage.put(key, data, content_type)
                    written.append(key)
                await session.commit()
            except Exception as exc:
                await session.rollback()
                await self._discard(written)
                if isinstance(exc, StorageError):
                    raise _storage_unavailable(exc) from exc
                raise

        log.audit(
            "product.create",
            f"product:{product.id}",
            product_id=product.id,
            images=len(processed),
            site=product.site,
        )
        self._start_generation(product.id, attempt_id)
        return product, False

    async def _replay(self, owner_id: str, key: str, fingerprint: str) -> Product | None:
        async with self.database.session() as session:
            repo = ProductRepository(session)
            record = await repo.key(owner_id, key)
            if record is None:
                return None
            if record.created_at <= self.clock() - self.key_ttl:
                # Remembered long enough: the key makes a new request, as a payment API's does.
                await repo.drop_key(record.id)
                await session.commit()
                return None
            if record.fingerprint != fingerprint:
                raise ProblemError(
                    422,
                    "This Idempotency-Key was used with a different request.",
                    title="Idempotency-Key reused",
                    slug="idempotency-key-reused",
                )
            product = await repo.get(record.product_id)
        if product is None:
            return None
        log.info("idempotent replay", product_id=product.id)
        return product

    async def _process(self, uploads: list[bytes]) -> list[ProcessedImage]:
        """Every upload checked and re-encoded; one bad image refuses them all, each named."""
        began = time.perf_counter()
        results: list[ProcessedImage] = []
        errors: list[dict[str, Any]] = []
        rejected: list[ImageRejectedError] = []
        for index, data in enumerate(uploads):
            try:
                async with self._decoders:
                    results.append(await asyncio.to_thread(process, data, self.rules))
            except ImageRejectedError as exc:
                rejected.append(exc)
                errors.append(
                    _field_error(
                        ["body", "images", index], f"image {index + 1} {exc.reason}", exc.kind
                    )
                )
        if errors:
            suspicious = [e.kind for e in rejected if e.suspicious]
            if suspicious:
                log.security_event(
                    "malformed_upload", "low", images=len(uploads), refused=suspicious
                )
            reasons = "; ".join(e["message"][0].upper() + e["message"][1:] for e in errors)
            raise _invalid(f"No image was stored. {reasons}.", errors)
        log.performance(
            "images.process",
            (time.perf_counter() - began) * 1000,
            images=len(uploads),
            bytes=sum(len(d) for d in uploads),
        )
        return results

    async def _discard(self, keys: list[str]) -> None:
        if not keys:
            return
        try:
            await self.storage.delete(keys)
        except StorageError as exc:
            log.error("could not remove stored files", keys=len(keys), error=str(exc))

    # --- housekeeping --------------------------------------------------------------------

    async def purge_expired_keys(self) -> int:
        """Forgets Idempotency-Keys older than their time to live; returns how many.

        Expired keys are already ignored when presented; this only frees their rows.
        """
        async with self.database.session() as session:
            purged = await ProductRepository(session).purge_keys(self.clock() - self.key_ttl)
            await session.commit()
        if purged:
            log.info("expired idempotency keys purged", count=purged)
        return purged

    async def sweep_orphan_files(self, grace: timedelta) -> int:
        """Removes stored files that no image refers to and are older than ``grace``.

        They are left by a crash between storing a new product's files and its commit, or by
        a storage fault after a delete. Files of a create still in flight are younger than
        ``grace``, so they are never taken. Returns how many files went.
        """
        cutoff = self.clock() - grace
        removed = 0
        batch: dict[str, list[str]] = {}
        fresh: set[str] = set()
        # Keys are products/<product>/<image>/<rendition>.<ext> and come in key order, so the
        # files of one image are neighbours and a batch never splits them.
        async for stored in self.storage.objects("products/"):
            parts = stored.key.split("/")
            if len(parts) != 4:
                continue
            image_id = parts[2]
            if image_id not in batch and len(batch) >= SWEEP_BATCH:
                removed += await self._remove_orphans(batch, fresh)
                batch, fresh = {}, set()
            batch.setdefault(image_id, []).append(stored.key)
            if stored.modified > cutoff:
                fresh.add(image_id)
        removed += await self._remove_orphans(batch, fresh)
        return removed

    async def _remove_orphans(self, batch: dict[str, list[str]], fresh: set[str]) -> int:
        candidates = {image_id: keys for image_id, keys in batch.items() if image_id not in fresh}
        if not candidates:
            return 0
        async with self.database.session() as session:
            known = await ProductRepository(session).existing_images(candidates)
        orphans = {i: keys for i, keys in candidates.items() if i not in known}
        files = [key for keys in orphans.values() for key in keys]
        if files:
            await self.storage.delete(files)
            log.warning("orphan image files removed", files=len(files), images=len(orphans))
        return len(files)

    # --- changing ------------------------------------------------------------------------

    async def update(self, owner_id: str, product_id: str, patch: ProductPatch) -> Product:
        if patch.price is not None:
            self._check_price(patch.price, ["body", "price"])
        product = await self.get(owner_id, product_id)
        if product.status not in EDITABLE:
            raise _conflict(product, "editing", EDITABLE)
        values: dict[str, Any] = {}
        changes = patch.content_changes
        if changes:
            if product.content_id is None:
                raise ProblemError(
                    409,
                    "The product has no content to edit yet; generate it first.",
                    title="No content yet",
                    slug="no-content",
                )
            content, created = await self._validate_edit(product.content_id, changes)
            if created:
                values.update(
                    content_id=content["id"],
                    content=content,
                    status="needs_review",
                    failure_reason=None,
                    failed_step=None,
                )
        for name in ("price", "quantity", "condition"):
            value = getattr(patch, name)
            if value is not None and value != getattr(product, name):
                values[name] = value
        if not values:
            return product
        values["updated_at"] = self.clock()
        async with self.database.session() as session:
            repo = ProductRepository(session)
            if not await repo.change(
                product_id, values, statuses=EDITABLE, revision=product.revision
            ):
                raise _changed_meanwhile()
            await session.commit()
            updated = await self._owned(repo, owner_id, product_id)
        log.audit("product.update", f"product:{product_id}", fields=sorted(values))
        return updated

    async def _validate_edit(
        self, content_id: str, changes: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        try:
            body, created = await self.ai.validate(content_id, changes)
            return _snapshot(body, self.ai.peer.name), created
        except PeerRefusalError as exc:
            if exc.status == 404:
                raise ProblemError(
                    409,
                    "The AI content service no longer knows this product's content; regenerate it.",
                    title="Content gone",
                    slug="content-gone",
                ) from exc
            if exc.status == 422:
                raise ProblemError(
                    422,
                    str(exc.problem.get("detail") or exc.reason),
                    title="Request validation failed",
                    slug="validation-error",
                    errors=exc.problem.get("errors") or [],
                ) from exc
            raise self._peer_unavailable(exc) from exc
        except PeerError as exc:
            raise self._peer_unavailable(exc) from exc

    @staticmethod
    def _peer_unavailable(exc: PeerError) -> ProblemError:
        log.warning("edit not checked: peer unavailable", reason=exc.reason)
        return ProblemError(
            503,
            f"{exc.reason} The edit was not saved; retry shortly.",
            title="Service Unavailable",
            slug="dependency-unavailable",
            headers={"Retry-After": "5"},
        )

    async def delete(self, owner_id: str, product_id: str) -> None:
        product = await self.get(owner_id, product_id)
        if product.status not in DELETABLE:
            raise _conflict(product, "deleting", DELETABLE)
        keys = [key for image in product.images for key in image.variants.values()]
        async with self.database.session() as session:
            if not await ProductRepository(session).delete(
                product_id, revision=product.revision, statuses=DELETABLE
            ):
                raise _changed_meanwhile()
            await session.commit()
        # After the commit: a storage failure now leaves unreferenced files (logged), never
        # a product whose pictures are gone.
        await self._discard(keys)
        log.audit("product.delete", f"product:{product_id}", images=len(product.images))

    # --- generation ----------------------------------------------------------------------

    async def regenerate(self, owner_id: str, product_id: str) -> Product:
        product = await self.get(owner_id, product_id)
        if product.status not in REGENERABLE:
            raise _conflict(product, "generating content", REGENERABLE)
        attempt_id = str(uuid.uuid4())
        async with self.database.session() as session:
            repo = ProductRepository(session)
            if not await repo.change(
                product_id,
                self._claim("processing", attempt_id),
                statuses=REGENERABLE,
                revision=product.revision,
            ):
                raise _changed_meanwhile()
            await session.commit()
            product = await self._owned(repo, owner_id, product_id)
        log.audit("product.generate", f"product:{product_id}")
        self._start_generation(product_id, attempt_id)
        return product

    def _claim(self, status: str, attempt_id: str) -> dict[str, Any]:
        return {
            "status": status,
            "attempt_id": attempt_id,
            "worker_id": self.work.worker_id,
            "lease_expires_at": self.work.lease_until(),
            "failure_reason": None,
            "failed_step": None,
            "updated_at": self.clock(),
        }

    def _start_generation(self, product_id: str, attempt_id: str) -> None:
        self.work.spawn(f"generate:{product_id}", self._generate(product_id, attempt_id))

    async def _generate(self, product_id: str, attempt_id: str) -> None:
        began = time.perf_counter()
        values: dict[str, Any]
        try:
            async with self.database.session() as session:
                product = await ProductRepository(session).get(product_id)
            if product is None or product.attempt_id != attempt_id:
                return
            body = await self.ai.generate(await self._generation_request(product))
            content = _snapshot(body, self.ai.peer.name)
            score = float(content["quality"]["score"])
            ready = score >= self.config.ai_confidence_threshold and not content["needs_review"]
            values = {
                "status": "ready" if ready else "needs_review",
                "content_id": content["id"],
                "content": content,
            }
            log.info(
                "content attached",
                product_id=product_id,
                content_id=content["id"],
                score=score,
                status=values["status"],
            )
        except (PeerError, StorageError) as exc:
            reason = exc.reason if isinstance(exc, PeerError) else f"Image storage failed: {exc}"
            values = {"status": "failed", "failed_step": "generation", "failure_reason": reason}
            log.warning("generation failed", product_id=product_id, reason=reason)
        except Exception:
            log.exception("generation failed unexpectedly", product_id=product_id)
            values = {
                "status": "failed",
                "failed_step": "generation",
                "failure_reason": UNEXPECTED.format(step="generation"),
            }
        await self._finish(product_id, attempt_id, "processing", values)
        log.performance(
            "product.generate", (time.perf_counter() - began) * 1000, product_id=product_id
        )

    async def _generation_request(self, product: Product) -> dict[str, Any]:
        preview = self._preview_size()
        images = []
        for image in product.images:
            described: dict[str, Any] = {
                "id": image.id,
                "width": image.width,
                "height": image.height,
                "format": image.format,
                "dominant_colors": image.dominant_colors,
            }
            data = await self.storage.get(image.variants[preview])
            if len(data) <= MAX_PREVIEW_BYTES:
                described["url"] = "data:image/jpeg;base64," + base64.b64encode(data).decode()
            images.append(described)
        return {
            "product_id": product.id,
            "prompt": product.prompt,
            "site": product.site,
            "images": images,
        }

    def _preview_size(self) -> str:
        sizes = self.config.thumbnail_sizes
        fitting = [s for s in sizes if s <= PREVIEW_EDGE]
        return str(max(fitting) if fitting else min(sizes))

    async def _finish(
        self, product_id: str, attempt_id: str, status: str, values: dict[str, Any]
    ) -> None:
        """Ends a background attempt, unless the product moved on (deleted, recovered)."""
        values = {
            **values,
            "attempt_id": None,
            "worker_id": None,
            "lease_expires_at": None,
            "updated_at": self.clock(),
        }
        async with self.database.session() as session:
            done = await ProductRepository(session).change(
                product_id, values, statuses=(status,), attempt_id=attempt_id
            )
            await session.commit()
        if not done:
            log.info("result dropped: the product moved on meanwhile", product_id=product_id)

    # --- publishing ----------------------------------------------------------------------

    async def publish(
        self, owner_id: str, product_id: str, idempotency_key: str | None
    ) -> tuple[Product, bool]:
        """The product (``publishing``) and whether it is a replay of an earlier request."""
        fingerprint = _fingerprint("publish", product_id)
        if idempotency_key is not None:
            replay = await self._replay(owner_id, idempotency_key, fingerprint)
            if replay is not None:
                return replay, True
        product = await self.get(owner_id, product_id)
        if product.status not in PUBLISHABLE:
            raise _conflict(product, "publishing", PUBLISHABLE)
        if product.content is None:
            raise ProblemError(
                409,
                "The product has no content to publish yet; generate it first.",
                title="No content yet",
                slug="no-content",
            )
        if product.price is None:
            message = "set a price (PATCH the product) before publishing"
            raise _invalid(
                f"Invalid input: price: {message}.",
                [_field_error(["body", "price"], message, "missing")],
            )
        attempt_id = str(uuid.uuid4())
        async with self.database.session() as session:
            repo = ProductRepository(session)
            if not await repo.change(
                product_id,
                self._claim("publishing", attempt_id),
                statuses=PUBLISHABLE,
                revision=product.revision,
            ):
                raise _changed_meanwhile()
            if idempotency_key is not None:
                try:
                    await repo.add_key(
                        IdempotencyKey(
                            id=str(uuid.uuid4()),
                            owner_id=owner_id,
                            key=idempotency_key,
                            fingerprint=fingerprint,
                            product_id=product_id,
                            created_at=self.clock(),
                        )
                    )
                except KeyTakenError:
                    # Rolled back with the transition: the request that stored the key won.
                    replay = await self._replay(owner_id, idempotency_key, fingerprint)
                    if replay is None:
                        raise _changed_meanwhile() from None
                    return replay, True
            await session.commit()
            product = await self._owned(repo, owner_id, product_id)
        log.audit("product.publish", f"product:{product_id}")
        self.work.spawn(f"publish:{product_id}", self._publish(product_id, attempt_id))
        return product, False

    def listing(self, product: Product) -> dict[str, Any]:
        """The MercadoLibre service's listing body for a product with content and a price."""
        content = product.content
        assert content is not None
        assert product.price is not None
        base = self.config.public_base_url.rstrip("/")
        return {
            "product_id": product.id,
            "title": content["title"],
            "description": content["description"],
            "category_id": content["category"]["id"],
            "price": f"{product.price:f}",
            "currency": CURRENCIES[product.site],
            "quantity": product.quantity,
            "condition": product.condition,
            "pictures": [
                f"{base}/api/v1/products/{product.id}/images/{image.id}?size=original"
                for image in product.images
            ],
            "attributes": [
                {"id": a["id"], "value_name": a["value_name"]} for a in content["attributes"]
            ],
        }

    async def _publish(self, product_id: str, attempt_id: str) -> None:
        began = time.perf_counter()
        values: dict[str, Any]
        try:
            async with self.database.session() as session:
                product = await ProductRepository(session).get(product_id)
            if product is None or product.attempt_id != attempt_id:
                return
            listing = self.listing(product)
            # The same listing always goes with the same key: a retry after a timeout or a
            # fault halfway (pictures uploaded, item not yet made) resumes it at the
            # MercadoLibre service instead of listing twice. An edited listing is a new one.
            key = f"product-{product_id}-{_fingerprint(listing)[:32]}"
            answer = await self.mercadolibre.publish(listing, key)
            values = {
                "status": "published",
                "item_id": str(answer["item_id"]),
                "permalink": answer.get("permalink"),
                "published_at": self.clock(),
            }
            log.info(
                "published",
                product_id=product_id,
                item_id=values["item_id"],
                permalink=values["permalink"],
            )
        except PeerError as exc:
            values = {"status": "failed", "failed_step": "publishing", "failure_reason": exc.reason}
            log.warning("publication failed", product_id=product_id, reason=exc.reason)
        except Exception:
            log.exception("publication failed unexpectedly", product_id=product_id)
            values = {
                "status": "failed",
                "failed_step": "publishing",
                "failure_reason": UNEXPECTED.format(step="publication"),
            }
        await self._finish(product_id, attempt_id, "publishing", values)
        log.performance(
            "product.publish", (time.perf_counter() - began) * 1000, product_id=product_id
        )
