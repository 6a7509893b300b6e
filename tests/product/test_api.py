"""The product API as a client sees it: a real process, real databases, real image files."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.product.conftest import Stack
from tests.product.support import (
    API,
    GPS_IFD,
    auth,
    create,
    files,
    gps_exif,
    jpeg,
    noise_png,
    pixel_bomb_png,
    png,
    sample_photos,
    stored_files,
    truncated_jpeg,
    wait_for_status,
    webp,
)


def get(stack: Stack, token: str, path: str = "", **params: Any) -> httpx.Response:
    return httpx.get(f"{stack.url}{API}{path}", headers=auth(token), params=params, timeout=30)


def ready_product(stack: Stack, token: str, **fields: str) -> dict[str, Any]:
    created = create(stack.url, token, [("a.jpg", jpeg())], **fields)
    assert created.status_code == 201, created.text
    body = wait_for_status(stack.url, token, created.json()["id"], leaving="processing")
    assert body["status"] == "ready", body
    return body


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


# --- creating -----------------------------------------------------------------------------


def test_create_answers_at_once_in_processing_and_content_makes_it_ready(stack: Stack) -> None:
    token = stack.token()
    response = create(stack.url, token, sample_photos(), price="45999.90", quantity="3")
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "processing"
    assert created["content"] is None
    assert response.headers["location"] == f"{API}/{created['id']}"
    assert (created["price"], created["quantity"], created["currency"]) == ("45999.90", 3, "ARS")

    product = wait_for_status(stack.url, token, created["id"], leaving="processing")
    assert product["status"] == "ready"
    content = product["content"]
    assert content["title"].startswith("Zapatillas Running Topper")
    assert content["category"]["id"] == "MLA109027"
    assert {"id": "BRAND", "value_name": "Topper"} in content["attributes"]
    assert content["quality"]["score"] >= 0.8
    assert product["failure"] is None
    assert [image["position"] for image in product["images"]] == [0, 1, 2]
    assert [image["format"] for image in product["images"]] == ["jpeg", "jpeg", "png"]
    assert "red" in product["images"][0]["dominant_colors"]


def test_every_size_of_every_image_is_served_to_its_owner(stack: Stack) -> None:
    token = stack.token()
    product = create(stack.url, token, [("front.jpg", jpeg(1000, 800))]).json()
    image = product["images"][0]
    assert set(image["urls"]) == {"original", "150", "300", "600"}
    for size, expected in {"original": (1000, 800), "300": (300, 240), "600": (600, 480)}.items():
        response = httpx.get(stack.url + image["urls"][size], headers=auth(token), timeout=10)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/jpeg"
        assert response.headers["cache-control"].startswith("private")
        assert Image.open(io.BytesIO(response.content)).size == expected
    wrong = httpx.get(
        f"{stack.url}{API}/{product['id']}/images/{image['id']}",
        params={"size": "1000"},
        headers=auth(token),
    )
    assert problem(wrong, 422)["errors"][0]["field"] == "size"


def test_a_png_named_jpg_is_taken_for_what_it_is(stack: Stack) -> None:
    token = stack.token()
    response = create(stack.url, token, [("photo.jpg", png(700, 600))])
    assert response.status_code == 201, response.text
    image = response.json()["images"][0]
    assert image["format"] == "png"
    original = httpx.get(stack.url + image["urls"]["original"], headers=auth(token))
    assert original.headers["content-type"] == "image/png"
    assert original.content.startswith(b"\x89PNG")


def test_webp_is_accepted_and_stored_as_jpeg(stack: Stack) -> None:
    token = stack.token()
    response = create(stack.url, token, [("photo.webp", webp(600, 600))])
    assert response.status_code == 201, response.text
    assert response.json()["images"][0]["format"] == "jpeg"


def test_exif_gps_is_gone_after_upload(stack: Stack) -> None:
    token = stack.token()
    upload = jpeg(800, 600, exif=gps_exif(orientation=6), comment=b"home, 5th avenue")
    assert Image.open(io.BytesIO(upload)).getexif().get_ifd(GPS_IFD)
    product = create(stack.url, token, [("gps.jpg", upload)]).json()
    image = product["images"][0]
    assert (image["width"], image["height"]) == (600, 800)  # orientation applied
    for url in image["urls"].values():
        stored = httpx.get(stack.url + url, headers=auth(token)).content
        assert b"GPS" not in stored
        assert b"5th avenue" not in stored
        assert not Image.open(io.BytesIO(stored)).getexif()


# Built when the test runs (the bomb and the 11 MB file take a moment to make).
REFUSED: dict[str, tuple[str, Callable[[], bytes], str]] = {
    "text-named-png": ("notes.png", lambda: b"Not an image, just some text.\n" * 50, "not a JPEG"),
    "truncated-jpeg": ("cut.jpg", truncated_jpeg, "truncated"),
    "1x1": ("pixel.png", lambda: png(1, 1), "1x1 pixels"),
    "pixel-bomb": ("bomb.png", pixel_bomb_png, "too many pixels"),
    "11-mb": ("huge.png", lambda: noise_png(11), "the limit is 10 MB"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_bad_images_are_refused_and_nothing_is_stored(stack: Stack, case: str) -> None:
    token = stack.token()
    name, make, words = REFUSED[case]
    before = set(stored_files(stack.media))
    body = problem(create(stack.url, token, [(name, make())]), 422)
    assert body["errors"][0]["loc"] == ["body", "images", "0"]
    assert words in body["errors"][0]["message"]
    assert words in body["detail"]
    assert set(stored_files(stack.media)) == before
    assert get(stack, token).json()["items"] == []


def test_nine_images_are_refused_before_any_is_read(stack: Stack) -> None:
    token = stack.token()
    body = problem(create(stack.url, token, [(f"{i}.jpg", jpeg()) for i in range(9)]), 422)
    assert body["errors"][0]["field"] == "images"
    assert "1 to 8 images (got 9)" in body["detail"]
    assert get(stack, token).json()["items"] == []


def test_one_bad_image_among_good_ones_refuses_all_naming_each(stack: Stack) -> None:
    token = stack.token()
    before = set(stored_files(stack.media))
    response = create(
        stack.url,
        token,
        [("a.jpg", jpeg()), ("b.png", b"plain text"), ("c.jpg", jpeg()), ("d.png", png(1, 1))],
    )
    body = problem(response, 422)
    assert [e["loc"][-1] for e in body["errors"]] == ["1", "3"]
    assert body["errors"][0]["message"] == "image 2 is not a JPEG, PNG or WebP image"
    assert body["errors"][1]["message"].startswith("image 4 is 1x1 pixels")
    assert "No image was stored" in body["detail"]
    assert set(stored_files(stack.media)) == before
    assert get(stack, token).json()["items"] == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"prompt": "too short"}, "prompt_text"),
        ({"prompt": "x" * 501}, "prompt_text"),
        ({"price": "-3"}, "price"),
        ({"price": "0.50"}, "price"),  # under min_price
        ({"price": "12.345"}, "price"),
        ({"quantity": "0"}, "quantity"),
        ({"condition": "broken"}, "condition"),
        ({"site": "XXX"}, "site"),
    ],
)
def test_bad_fields_are_refused_and_nothing_is_made(
    stack: Stack, fields: dict[str, str], field: str
) -> None:
    token = stack.token()
    fields = dict(fields)  # the parameters are shared by both backends' runs
    prompt = fields.pop("prompt", None)
    kwargs = {"prompt": prompt} if prompt else {}
    body = problem(create(stack.url, token, [("a.jpg", jpeg())], **kwargs, **fields), 422)
    assert field in {e["field"] for e in body["errors"]}
    assert get(stack, token).json()["items"] == []


def test_a_request_without_images_is_refused(stack: Stack) -> None:
    token = stack.token()
    response = httpx.post(
        stack.url + API, data={"prompt_text": "Mochila urbana azul 25 litros"}, headers=auth(token)
    )
    assert problem(response, 422)["errors"][0]["field"] == "images"


def test_without_a_token_nothing_is_answered(stack: Stack) -> None:
    assert problem(httpx.get(stack.url + API), 401)["type"].endswith("invalid-token")
    response = httpx.post(
        stack.url + API,
        data={"prompt_text": "Mochila urbana azul 25 litros"},
        files=files(("a.jpg", jpeg())),
    )
    assert response.status_code == 401


# --- idempotency ----------------------------------------------------------------------------


def test_a_retried_create_with_its_key_returns_the_same_product(stack: Stack) -> None:
    token = stack.token()
    key = f"create-{uuid.uuid4()}"
    first = create(stack.url, token, [("a.jpg", jpeg())], key=key)
    again = create(stack.url, token, [("a.jpg", jpeg())], key=key)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(get(stack, token).json()["items"]) == 1


def test_a_key_reused_with_another_request_is_refused(stack: Stack) -> None:
    token = stack.token()
    key = f"create-{uuid.uuid4()}"
    assert create(stack.url, token, [("a.jpg", jpeg())], key=key).status_code == 201
    other = create(stack.url, token, [("a.jpg", jpeg())], key=key, prompt="Otra cosa distinta")
    assert problem(other, 422)["type"].endswith("idempotency-key-reused")
    different_photo = create(stack.url, token, [("a.jpg", jpeg(rgb=(1, 2, 3)))], key=key)
    assert problem(different_photo, 422)["type"].endswith("idempotency-key-reused")
    assert len(get(stack, token).json()["items"]) == 1


def test_one_key_belongs_to_one_user(stack: Stack) -> None:
    key = f"create-{uuid.uuid4()}"
    ana, bruno = stack.token(), stack.token()
    first = create(stack.url, ana, [("a.jpg", jpeg())], key=key).json()
    second = create(stack.url, bruno, [("a.jpg", jpeg())], key=key).json()
    assert first["id"] != second["id"]


async def test_concurrent_creates_with_one_key_make_one_product(stack: Stack) -> None:
    token = stack.token()
    key = f"create-{uuid.uuid4()}"
    data = jpeg()

    async def attempt(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(
            stack.url + API,
            data={"prompt_text": "Mochila urbana azul 25 litros"},
            files=files(("a.jpg", data)),
            headers={**auth(token), "Idempotency-Key": key},
        )

    async with httpx.AsyncClient(timeout=60) as client:
        answers = await asyncio.gather(*(attempt(client) for _ in range(4)))
    assert [a.status_code for a in answers] == [201] * 4
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(get(stack, token).json()["items"]) == 1


# --- listing --------------------------------------------------------------------------------


def test_listing_pages_newest_first_without_gaps_or_repeats(stack: Stack) -> None:
    token = stack.token()
    made = [create(stack.url, token, [("a.jpg", jpeg(500, 500))]).json()["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = get(stack, token, **params).json()
        seen.extend(item["id"] for item in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(made))


def test_listing_filters_by_status(stack: Stack) -> None:
    token = stack.token()
    ready = ready_product(stack, token)
    assert [p["id"] for p in get(stack, token, status="ready").json()["items"]] == [ready["id"]]
    assert get(stack, token, status="published").json()["items"] == []


@pytest.mark.parametrize(
    "params",
    [{"limit": 101}, {"limit": 0}, {"status": "lost"}, {"cursor": "not-a-cursor"}],
)
def test_listing_refuses_bad_parameters(stack: Stack, params: dict[str, Any]) -> None:
    assert problem(get(stack, stack.token(), **params), 422)["errors"]


# --- editing --------------------------------------------------------------------------------


def test_an_edit_is_revalidated_as_a_new_version_and_needs_review(stack: Stack) -> None:
    token = stack.token()
    product = ready_product(stack, token)
    response = httpx.patch(
        f"{stack.url}{API}/{product['id']}",
        json={"title": "Zapatillas Topper Boost Run rojas talle 42", "price": "52000"},
        headers=auth(token),
    )
    assert response.status_code == 200, response.text
    edited = response.json()
    assert edited["status"] == "needs_review"
    assert edited["content"]["title"] == "Zapatillas Topper Boost Run rojas talle 42"
    assert edited["content"]["version"] == product["content"]["version"] + 1
    assert edited["content"]["id"] != product["content"]["id"]
    assert edited["content"]["provider"] == "manual"
    assert edited["price"] == "52000.00"
    assert get(stack, token, f"/{product['id']}").json() == edited


def test_an_edit_of_price_alone_keeps_the_status(stack: Stack) -> None:
    token = stack.token()
    product = ready_product(stack, token)
    response = httpx.patch(
        f"{stack.url}{API}/{product['id']}", json={"quantity": 7}, headers=auth(token)
    )
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["quantity"]) == ("ready", 7)
    assert response.json()["content"] == product["content"]


@pytest.mark.parametrize(
    "body",
    [
        {"price": "0.10"},
        {"price": "999999999999"},
        {"quantity": 0},
        {"title": ""},
        {"sku": "X-1"},
        {"attributes": [{"id": "BRAND", "value_name": "A"}, {"id": "BRAND", "value_name": "B"}]},
        {"attributes": [{"id": "brand name", "value_name": "A"}]},
    ],
)
def test_bad_edits_change_nothing(stack: Stack, body: dict[str, Any]) -> None:
    token = stack.token()
    product = ready_product(stack, token)
    response = httpx.patch(f"{stack.url}{API}/{product['id']}", json=body, headers=auth(token))
    problem(response, 422)
    assert get(stack, token, f"/{product['id']}").json() == product


# --- lifecycle ------------------------------------------------------------------------------


def test_publishing_without_a_price_is_refused_and_changes_nothing(stack: Stack) -> None:
    token = stack.token()
    product = ready_product(stack, token)
    response = httpx.post(f"{stack.url}{API}/{product['id']}/publish", headers=auth(token))
    assert problem(response, 422)["errors"][0]["field"] == "price"
    assert get(stack, token, f"/{product['id']}").json()["status"] == "ready"


def test_publishing_with_the_marketplace_service_down_fails_with_a_reason_and_can_be_retried(
    stack: Stack,
) -> None:
    token = stack.token()
    product = ready_product(stack, token, price="100")
    url = f"{stack.url}{API}/{product['id']}/publish"
    started = httpx.post(url, headers={**auth(token), "Idempotency-Key": "pub-1"})
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "publishing"
    failed = wait_for_status(stack.url, token, product["id"], leaving="publishing")
    assert failed["status"] == "failed"
    assert failed["failure"]["step"] == "publishing"
    assert "MercadoLibre service is unavailable" in failed["failure"]["reason"]
    assert failed["content"] == product["content"]  # nothing lost

    replay = httpx.post(url, headers={**auth(token), "Idempotency-Key": "pub-1"})
    assert replay.status_code == 202
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["status"] == "failed"  # the same request: no second attempt

    retried = httpx.post(url, headers={**auth(token), "Idempotency-Key": "pub-2"})
    assert retried.status_code == 202
    assert retried.json()["status"] == "publishing"
    assert retried.json()["failure"] is None
    again = wait_for_status(stack.url, token, product["id"], leaving="publishing")
    assert again["status"] == "failed"


def test_regenerating_runs_generation_again(stack: Stack) -> None:
    token = stack.token()
    product = ready_product(stack, token)
    response = httpx.post(f"{stack.url}{API}/{product['id']}/generate", headers=auth(token))
    assert response.status_code == 202
    assert response.json()["status"] == "processing"
    again = wait_for_status(stack.url, token, product["id"], leaving="processing")
    assert again["status"] == "ready"
    assert again["content"]["title"] == product["content"]["title"]


def test_content_below_the_threshold_needs_review(stack: Stack) -> None:
    token = stack.token()
    prompt = "ZAPATILLAS TOPPER OFERTA IMPERDIBLE ENVIO GRATIS!!!"
    created = create(stack.url, token, [("a.jpg", jpeg())], prompt=prompt).json()
    product = wait_for_status(stack.url, token, created["id"], leaving="processing")
    assert product["status"] == "needs_review"
    assert product["content"]["quality"]["score"] < 0.8
    failed = {c["name"] for c in product["content"]["quality"]["checks"] if not c["passed"]}
    assert "no_banned_words" in failed


def test_a_missing_attribute_is_reported_while_the_score_still_makes_it_ready(
    stack: Stack,
) -> None:
    token = stack.token()
    created = create(stack.url, token, [("a.jpg", jpeg())], prompt="vendo zapatillas rojas").json()
    product = wait_for_status(stack.url, token, created["id"], leaving="processing")
    # 6 of 7 checks pass without brand and model: at the default threshold of 0.8 that is
    # ready; the failed check is there for the seller to see what to add.
    checks = {c["name"]: c["passed"] for c in product["content"]["quality"]["checks"]}
    assert checks["required_attributes"] is False
    assert product["content"]["quality"]["score"] >= 0.8
    assert product["status"] == "ready"


# --- deleting -------------------------------------------------------------------------------


def test_delete_removes_the_product_and_its_files(stack: Stack) -> None:
    token = stack.token()
    product = ready_product(stack, token)
    folder = stack.media / "products" / product["id"]
    assert len([p for p in folder.rglob("*") if p.is_file()]) == 4  # original + 3 thumbnails
    response = httpx.delete(f"{stack.url}{API}/{product['id']}", headers=auth(token))
    assert response.status_code == 204
    assert not folder.exists()
    assert problem(get(stack, token, f"/{product['id']}"), 404)["type"].endswith(
        "product-not-found"
    )
    assert httpx.delete(f"{stack.url}{API}/{product['id']}", headers=auth(token)).status_code == 404


# --- ownership ------------------------------------------------------------------------------


def test_another_users_product_is_404_on_every_route(stack: Stack) -> None:
    owner, stranger = stack.token(), stack.token()
    product = ready_product(stack, owner, price="100")
    image = product["images"][0]
    base = f"{stack.url}{API}/{product['id']}"
    theirs = auth(stranger)
    attempts = [
        httpx.get(base, headers=theirs),
        httpx.patch(base, json={"title": "Mine now"}, headers=theirs),
        httpx.post(f"{base}/generate", headers=theirs),
        httpx.post(f"{base}/publish", headers={**theirs, "Idempotency-Key": "steal"}),
        httpx.get(stack.url + image["urls"]["original"], headers=theirs),
        httpx.get(stack.url + image["urls"]["300"], headers=theirs),
        httpx.delete(base, headers=theirs),
    ]
    for response in attempts:
        assert problem(response, 404)["detail"] == f"No product {product['id']}."
    assert get(stack, stranger).json()["items"] == []
    assert get(stack, owner, f"/{product['id']}").json() == product
    assert httpx.get(stack.url + image["urls"]["original"], headers=auth(owner)).status_code == 200
    security = stack.product.wait_for_log(
        lambda r: r.get("event_type") == "security" and r.get("product_id") == product["id"]
    )
    assert security
    assert {r["security_event"] for r in security} == {"foreign_product_access"}


def test_unknown_ids_are_404_and_malformed_ids_422(stack: Stack) -> None:
    token = stack.token()
    assert problem(get(stack, token, f"/{uuid.uuid4()}"), 404)
    assert problem(get(stack, token, "/not-a-uuid"), 422)
    product = ready_product(stack, token)
    missing_image = get(stack, token, f"/{product['id']}/images/{uuid.uuid4()}")
    assert problem(missing_image, 404)["type"].endswith("image-not-found")


def test_media_stays_under_its_directory(stack: Stack) -> None:
    token = stack.token()
    create(stack.url, token, [("../../../../tmp/evil.jpg", jpeg())])
    for path in stored_files(stack.media):
        assert Path(stack.media) in path.parents
        assert "evil" not in str(path)
