"""Checking and re-encoding uploaded photos: sniffed formats, limits, no metadata, thumbnails."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageOps

from intellipost.product.config import ProductConfig

SourceFormat = Literal["jpeg", "png", "webp"]
StoredFormat = Literal["jpeg", "png"]
CONTENT_TYPES: dict[str, str] = {"jpeg": "image/jpeg", "png": "image/png"}
EXTENSIONS: dict[str, str] = {"jpeg": "jpg", "png": "png"}
ORIGINAL = "original"

# The decoders each sniffed format may be opened with: a file that starts like a PNG is
# never handed to any other parser.
_PILLOW_FORMATS: dict[SourceFormat, str] = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
# Pillow's own bomb check warns at MAX_IMAGE_PIXELS and raises at twice that. We refuse
# such images ourselves from the header, before any pixel is decoded, so its warning (which
# would go to stderr, outside the log) says nothing we do not already act on.
warnings.simplefilter("ignore", Image.DecompressionBombWarning)

# Named colours for the content service's prompt: a model reads "red" better than a hex code.
_PALETTE: dict[str, tuple[int, int, int]] = {
    "black": (20, 20, 20),
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
    "red": (200, 30, 30),
    "orange": (240, 140, 20),
    "yellow": (240, 215, 40),
    "green": (40, 150, 60),
    "light blue": (120, 180, 230),
    "blue": (30, 80, 200),
    "navy": (20, 30, 80),
    "purple": (120, 50, 160),
    "pink": (240, 130, 180),
    "brown": (120, 75, 40),
    "beige": (225, 205, 165),
}


class ImageRejectedError(Exception):
    """The upload is not an image we take; ``reason`` is safe to show the seller.

    ``kind`` names the rule (``too_large``, ``not_an_image``, ``unreadable``,
    ``too_many_pixels``, ``truncated``, ``bad_metadata``, ``too_small``).
    """

    SUSPICIOUS = frozenset(
        {"not_an_image", "unreadable", "too_many_pixels", "truncated", "bad_metadata"}
    )

    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind

    @property
    def suspicious(self) -> bool:
        """Whether it looks crafted rather than a wrong pick (worth a security event)."""
        return self.kind in self.SUSPICIOUS


@dataclass(frozen=True, slots=True)
class ImageRules:
    max_bytes: int
    min_width: int
    min_height: int
    max_pixels: int
    quality: int
    thumbnail_sizes: tuple[int, ...]

    @classmethod
    def from_config(cls, config: ProductConfig) -> ImageRules:
        return cls(
            max_bytes=config.max_image_bytes,
            min_width=config.min_image_width,
            min_height=config.min_image_height,
            max_pixels=config.max_image_pixels,
            quality=config.image_quality,
            thumbnail_sizes=tuple(config.thumbnail_sizes),
        )


@dataclass(frozen=True, slots=True)
class Rendition:
    """One stored file of an image: the re-encoded original or a thumbnail."""

    name: str
    format: StoredFormat
    data: bytes

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


@dataclass(frozen=True, slots=True)
class ProcessedImage:
    width: int
    height: int
    dominant_colors: tuple[str, ...]
    renditions: tuple[Rendition, ...]

    @property
    def original(self) -> Rendition:
        return self.renditions[0]


def sniff(data: bytes) -> SourceFormat | None:
    """The format the bytes say they are, whatever the file is called or claims to be."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _megabytes(size: int) -> str:
    return f"{size / 1_048_576:.1f}".rstrip("0").rstrip(".")


def process(data: bytes, rules: ImageRules) -> ProcessedImage:
    """Checks one upload and re-encodes it; raises ImageRejectedError saying why not.

    CPU-bound: call it in a worker thread. The result carries no metadata of the upload
    (EXIF with its GPS position, XMP, comments); the orientation EXIF asked for is applied
    to the pixels first. JPEG stays JPEG and PNG stays PNG; WebP, which MercadoLibre does
    not take, becomes JPEG (or PNG when it has transparency). Thumbnails are JPEG.
    """
    if len(data) > rules.max_bytes:
        raise ImageRejectedError(
            f"is {_megabytes(len(data))} MB; the limit is {_megabytes(rules.max_bytes)} MB",
            "too_large",
        )
    kind = sniff(data)
    if kind is None:
        raise ImageRejectedError("is not a JPEG, PNG or WebP image", "not_an_image")
    try:
        image = Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[kind]])
    except Image.DecompressionBombError as exc:
        raise ImageRejectedError(
            f"has too many pixels (the limit is {rules.max_pixels})", "too_many_pixels"
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejectedError(f"is not a readable {kind.upper()} image", "unreadable") from exc
    with image:
        width, height = image.size
        if width * height > rules.max_pixels:
            raise ImageRejectedError(
                f"has {width}x{height} = {width * height} pixels; the limit is {rules.max_pixels}",
                "too_many_pixels",
            )
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageRejectedError("is truncated or corrupt", "truncated") from exc
        icc_profile = image.info.get("icc_profile")
        try:
            upright = ImageOps.exif_transpose(image)
        except Exception as exc:  # malformed EXIF fails in many ways inside Pillow
            raise ImageRejectedError("has unreadable metadata", "bad_metadata") from exc
    # Everything the upload carried besides pixels goes: EXIF (GPS above all), XMP,
    # comments, text chunks. The colour profile stays; it holds no personal data.
    upright.info = {}
    width, height = upright.size
    if width < rules.min_width or height < rules.min_height:
        raise ImageRejectedError(
            f"is {width}x{height} pixels; at least {rules.min_width}x{rules.min_height} is needed",
            "too_small",
        )
    transparent = upright.has_transparency_data
    stored: StoredFormat = (
        "jpeg" if kind == "jpeg" or (kind == "webp" and not transparent) else "png"
    )
    if stored == "png":
        pixels = upright.convert("RGBA" if transparent else "RGB")
    else:
        pixels = _flatten(upright)
    original = Rendition(ORIGINAL, stored, _encode(pixels, stored, rules.quality, icc_profile))
    opaque = _flatten(pixels)
    thumbnails = tuple(
        Rendition(
            str(edge), "jpeg", _encode(_fit(opaque, edge), "jpeg", rules.quality, icc_profile)
        )
        for edge in rules.thumbnail_sizes
    )
    return ProcessedImage(
        width=width,
        height=height,
        dominant_colors=dominant_colors(opaque),
        renditions=(original, *thumbnails),
    )


def _flatten(image: Image.Image) -> Image.Image:
    """RGB pixels; transparent areas become white, as a marketplace page shows them."""
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image if image.mode == "RGB" else image.convert("RGB")


def _fit(image: Image.Image, edge: int) -> Image.Image:
    if max(image.size) <= edge:
        return image  # never enlarged
    return ImageOps.contain(image, (edge, edge), method=Image.Resampling.LANCZOS)


def _encode(image: Image.Image, fmt: StoredFormat, quality: int, icc: bytes | None) -> bytes:
    out = io.BytesIO()
    options: dict[str, object] = {}
    if icc:
        options["icc_profile"] = icc
    if fmt == "jpeg":
        image.save(out, "JPEG", quality=quality, optimize=True, progressive=True, **options)
    else:
        image.save(out, "PNG", optimize=False, compress_level=6, **options)
    return out.getvalue()


def dominant_colors(image: Image.Image, most: int = 3) -> tuple[str, ...]:
    """Up to ``most`` colour names covering at least 5% of the picture, commonest first."""
    small = image.convert("RGB").resize((48, 48), Image.Resampling.BILINEAR)
    shares: dict[str, int] = {}
    for count, pixel in small.getcolors(48 * 48) or []:
        assert isinstance(pixel, tuple)
        name = _nearest((pixel[0], pixel[1], pixel[2]))
        shares[name] = shares.get(name, 0) + count
    total = 48 * 48
    ranked = sorted(shares.items(), key=lambda item: item[1], reverse=True)
    return tuple(name for name, count in ranked[:most] if count / total >= 0.05)


def _nearest(rgb: tuple[int, int, int]) -> str:
    r, g, b = rgb
    return min(
        _PALETTE,
        key=lambda name: (
            (r - _PALETTE[name][0]) ** 2
            + (g - _PALETTE[name][1]) ** 2
            + (b - _PALETTE[name][2]) ** 2
        ),
    )
