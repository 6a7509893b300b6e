"""The image rules on their own: what is refused, and what a stored file keeps and loses."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from PIL import Image

from intellipost.product.images import ImageRejectedError, ImageRules, process, sniff
from tests.product.support import (
    GPS_IFD,
    SAMPLES,
    gps_exif,
    jpeg,
    noise_png,
    pixel_bomb_png,
    png,
    truncated_jpeg,
    webp,
)

RULES = ImageRules(
    max_bytes=10 * 1_048_576,
    min_width=500,
    min_height=500,
    max_pixels=50_000_000,
    quality=85,
    thumbnail_sizes=(150, 300, 600),
)


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def refusal(data: bytes, rules: ImageRules = RULES) -> ImageRejectedError:
    with pytest.raises(ImageRejectedError) as caught:
        process(data, rules)
    return caught.value


def test_formats_are_sniffed_from_the_bytes() -> None:
    assert sniff(jpeg()) == "jpeg"
    assert sniff(png()) == "png"
    assert sniff(webp()) == "webp"
    assert sniff(b"GIF89a" + b"\x00" * 20) is None
    assert sniff(b"just some text, named photo.png") is None


@pytest.mark.parametrize(
    ("make", "kind", "words"),
    [
        (lambda: b"hello, I am a text file\n" * 40, "not_an_image", "not a JPEG, PNG or WebP"),
        (truncated_jpeg, "truncated", "truncated"),
        (lambda: png(1, 1), "too_small", "1x1 pixels; at least 500x500"),
        (lambda: jpeg(499, 800), "too_small", "499x800"),
        (pixel_bomb_png, "too_many_pixels", "too many pixels"),
        (lambda: pixel_bomb_png(8000, 8000), "too_many_pixels", "8000x8000 = 64000000 pixels"),
        (lambda: b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "unreadable", "not a readable PNG"),
    ],
    ids=["text", "truncated-jpeg", "1x1", "too-narrow", "bomb-400MP", "over-our-limit", "junk-png"],
)
def test_bad_uploads_are_refused_with_a_reason(
    make: Callable[[], bytes], kind: str, words: str
) -> None:
    error = refusal(make())
    assert error.kind == kind
    assert words in error.reason


def test_a_file_over_the_size_limit_is_refused_before_it_is_decoded() -> None:
    data = noise_png(11)
    assert len(data) > 11 * 1_000_000
    error = refusal(data)
    assert error.kind == "too_large"
    assert error.reason.endswith("the limit is 10 MB")


def test_exif_orientation_is_applied_and_every_metadata_block_removed() -> None:
    # 800 wide, 600 high, blue corner top-left; orientation 6 = "rotate 90° clockwise to view".
    data = jpeg(800, 600, exif=gps_exif(orientation=6), comment=b"shot at home, 5th avenue")
    assert opened(data).getexif().get_ifd(GPS_IFD)  # the upload does carry a position

    result = process(data, RULES)

    stored = opened(result.original.data)
    assert stored.format == "JPEG"
    assert (result.width, result.height) == stored.size == (600, 800)
    corner = stored.getpixel((580, 20))
    assert isinstance(corner, tuple)
    assert corner[2] > 150  # the blue corner is now top-right
    assert not stored.getexif()
    assert "exif" not in stored.info
    assert "comment" not in stored.info
    assert b"GPS" not in result.original.data
    assert b"5th avenue" not in result.original.data
    for thumbnail in result.renditions[1:]:
        assert b"GPS" not in thumbnail.data
        assert not opened(thumbnail.data).getexif()


def test_png_text_chunks_are_dropped_and_png_stays_png() -> None:
    result = process(png(700, 500, text={"Location": "-34.60,-58.38"}), RULES)
    stored = opened(result.original.data)
    assert stored.format == "PNG"
    assert stored.size == (700, 500)
    assert "Location" not in stored.info
    assert b"-34.60" not in result.original.data


def test_webp_becomes_jpeg_or_png_which_marketplaces_take() -> None:
    assert opened(process(webp(600, 600), RULES).original.data).format == "JPEG"
    transparent = process(webp(600, 600, (240, 140, 20, 128)), RULES).original
    assert transparent.format == "png"
    assert opened(transparent.data).mode == "RGBA"


def test_thumbnails_fit_each_edge_and_are_never_enlarged() -> None:
    result = process(jpeg(1200, 800), RULES)
    sizes = {r.name: opened(r.data).size for r in result.renditions}
    assert sizes == {
        "original": (1200, 800),
        "150": (150, 100),
        "300": (300, 200),
        "600": (600, 400),
    }
    small = process(jpeg(550, 550), RULES)
    assert {r.name: opened(r.data).size for r in small.renditions}["600"] == (550, 550)


def test_thumbnails_are_jpeg_with_transparency_on_white() -> None:
    result = process(png(600, 600, (0, 0, 0, 0)), RULES)
    thumbnail = opened(result.renditions[1].data)
    assert thumbnail.format == "JPEG"
    assert thumbnail.getpixel((75, 75)) == pytest.approx((255, 255, 255), abs=3)


def test_dominant_colours_are_named() -> None:
    result = process((SAMPLES / "sneaker-side.jpg").read_bytes(), RULES)
    assert "red" in result.dominant_colors
    assert process(png(600, 600, (30, 80, 200)), RULES).dominant_colors == ("blue",)


def test_the_sample_photos_pass_every_rule() -> None:
    for path in SAMPLES.iterdir():
        data = path.read_bytes()
        assert len(data) < 200 * 1024, path.name
        result = process(data, RULES)
        assert min(result.width, result.height) >= 500, path.name
