"""HTTP routes of the product service (public under /api/v1/products via the gateway)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Query, Request, Response, UploadFile

from intellipost.product.schemas import (
    Condition,
    IdempotencyKeyHeader,
    Price,
    ProductOut,
    ProductPage,
    ProductPatch,
    PromptText,
    Quantity,
    Site,
    Status,
)
from intellipost.product.service import NewProduct, ProductService
from intellipost.shared.auth import CurrentUser
from intellipost.shared.errors import ProblemError

router = APIRouter(prefix="/api/v1/products", tags=["products"])

IdempotencyKey = Annotated[
    IdempotencyKeyHeader | None,
    Header(description="Repeat a request safely: the same key gives the same answer."),
]


def _service(request: Request) -> ProductService:
    service: ProductService = request.app.state.products
    return service


def _replayed(response: Response, replayed: bool) -> None:
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"


@router.post("", status_code=201, response_model=ProductOut)
async def create_product(
    request: Request,
    response: Response,
    user: CurrentUser,
    prompt_text: Annotated[PromptText, Form(description="What the product is, 10-500 chars.")],
    images: Annotated[list[UploadFile], File(description="1 to 8 photos (JPEG, PNG, WebP).")],
    price: Annotated[Price | None, Form()] = None,
    quantity: Annotated[Quantity, Form()] = 1,
    condition: Annotated[Condition, Form()] = "new",
    site: Annotated[Site, Form(description="MercadoLibre site of the listing.")] = "MLA",
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """A product from photos and a prompt; its content is generated after the answer."""
    # The bytes decide what a file is: its name and declared type are never looked at.
    uploads = [await upload.read() for upload in images]
    product, replayed = await _service(request).create(
        user.user_id,
        NewProduct(prompt_text, price, quantity, condition, site),
        uploads,
        idempotency_key,
    )
    _replayed(response, replayed)
    response.headers["Location"] = f"/api/v1/products/{product.id}"
    return ProductOut.from_row(product)


@router.get("", response_model=ProductPage)
async def list_products(
    request: Request,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    status: Status | None = None,
) -> Any:
    """The seller's products, newest first."""
    rows, next_cursor = await _service(request).page(
        user.user_id, limit=limit, status=status, cursor=cursor
    )
    return ProductPage(items=[ProductOut.from_row(p) for p in rows], next_cursor=next_cursor)


@router.get("/{product_id}", response_model=ProductOut)
async def get_product(request: Request, user: CurrentUser, product_id: uuid.UUID) -> Any:
    return ProductOut.from_row(await _service(request).get(user.user_id, str(product_id)))


@router.patch("/{product_id}", response_model=ProductOut)
async def update_product(
    request: Request, user: CurrentUser, product_id: uuid.UUID, body: ProductPatch
) -> Any:
    """Edits before publishing; title, description and attributes are checked again."""
    product = await _service(request).update(user.user_id, str(product_id), body)
    return ProductOut.from_row(product)


@router.delete("/{product_id}", status_code=204)
async def delete_product(request: Request, user: CurrentUser, product_id: uuid.UUID) -> Response:
    """The product, its images and their files (a published listing stays on MercadoLibre)."""
    await _service(request).delete(user.user_id, str(product_id))
    return Response(status_code=204)


@router.post("/{product_id}/generate", status_code=202, response_model=ProductOut)
async def regenerate(request: Request, user: CurrentUser, product_id: uuid.UUID) -> Any:
    """Content again from the prompt and photos; runs after the answer."""
    return ProductOut.from_row(await _service(request).regenerate(user.user_id, str(product_id)))


@router.post("/{product_id}/publish", status_code=202, response_model=ProductOut)
async def publish(
    request: Request,
    response: Response,
    user: CurrentUser,
    product_id: uuid.UUID,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Lists the product on MercadoLibre; runs after the answer (poll the product)."""
    product, replayed = await _service(request).publish(
        user.user_id, str(product_id), idempotency_key
    )
    _replayed(response, replayed)
    return ProductOut.from_row(product)


@router.get("/{product_id}/images/{image_id}")
async def image(
    request: Request,
    user: CurrentUser,
    product_id: uuid.UUID,
    image_id: uuid.UUID,
    size: Annotated[str, Query(description="'original' or a thumbnail edge (300, 600, ...)")] = (
        "original"
    ),
) -> Response:
    service = _service(request)
    sizes = ["original", *(str(s) for s in service.config.thumbnail_sizes)]
    if size not in sizes:
        raise ProblemError(
            422,
            f"Invalid input: size must be one of {', '.join(sizes)}.",
            title="Request validation failed",
            slug="validation-error",
            errors=[
                {
                    "loc": ["query", "size"],
                    "field": "size",
                    "message": f"must be one of {', '.join(sizes)}",
                    "type": "enum",
                }
            ],
        )
    data, extension = await service.image(user.user_id, str(product_id), str(image_id), size)
    return Response(
        data,
        media_type="image/png" if extension == "png" else "image/jpeg",
        headers={
            # A file under an id never changes (a new photo gets a new id); only its owner
            # may see it, so shared caches must not keep it.
            "Cache-Control": "private, max-age=86400, immutable",
            "Content-Disposition": f'inline; filename="{image_id}-{size}.{extension}"',
            "X-Content-Type-Options": "nosniff",
        },
    )
