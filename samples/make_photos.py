"""Draws the sample product photos in samples/photos/ (run once; the results are committed).

Not part of any service: `make demo` uploads the committed files. Re-run after changing a
drawing: ``.venv/bin/python samples/make_photos.py``. The photos show a made-up red running
shoe (no real brand's marks): two JPEG photos and one PNG, all at least 500x500 and under
200 KB, so they pass the product service's checks as a real seller's photos would.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

OUT = Path(__file__).resolve().parent / "photos"
RED = (196, 32, 38)
DARK_RED = (140, 18, 26)
WHITE = (248, 248, 246)
GREY = (60, 62, 66)


def gradient(size: tuple[int, int], top: tuple[int, ...], bottom: tuple[int, ...]) -> Image.Image:
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / (height - 1)
        colour = tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        draw.line([(0, y), (width, y)], fill=colour)
    return image


def curve(points: list[tuple[float, float]], steps: int = 24) -> list[tuple[float, float]]:
    """A smooth path through ``points`` (Catmull-Rom), for shoe outlines."""
    path: list[tuple[float, float]] = []
    padded = [points[0], *points, points[-1]]
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1], padded[i], padded[i + 1], padded[i + 2]
        for step in range(steps):
            t = step / steps
            t2, t3 = t * t, t * t * t
            path.append(
                tuple(  # type: ignore[arg-type]
                    0.5
                    * (
                        2 * p1[k]
                        + (-p0[k] + p2[k]) * t
                        + (2 * p0[k] - 5 * p1[k] + 4 * p2[k] - p3[k]) * t2
                        + (-p0[k] + 3 * p1[k] - 3 * p2[k] + p3[k]) * t3
                    )
                    for k in (0, 1)
                )
            )
    path.append(points[-1])
    return path


def shoe(draw: ImageDraw.ImageDraw, x: float, y: float, scale: float, flip: bool = False) -> None:
    """A running shoe seen from the side; (x, y) is the back of the sole, on the ground."""

    def at(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(x + (-px if flip else px) * scale, y - py * scale) for px, py in points]

    sole = curve([(0, 0), (120, -6), (420, -6), (560, 10), (600, 40), (560, 62), (0, 70), (0, 0)])
    upper = curve(
        [(10, 62), (0, 190), (40, 250), (150, 270), (230, 230), (330, 170), (450, 130),
         (560, 100), (600, 62), (10, 62)]
    )  # fmt: skip
    heel = curve([(10, 62), (0, 190), (40, 250), (110, 262), (120, 150), (90, 62)])
    draw.polygon(at(upper), fill=RED)
    draw.polygon(at(heel), fill=DARK_RED)
    draw.polygon(at(sole), fill=WHITE, outline=(200, 200, 200))
    for i in range(14):  # tread
        tx = 30 + i * 40
        draw.line(at([(tx, 4), (tx + 18, 4)]), fill=GREY, width=max(2, round(6 * scale)))
    stripe = curve([(170, 90), (260, 110), (360, 150), (470, 120)])
    draw.line(at(stripe), fill=WHITE, width=max(3, round(16 * scale)))
    for i in range(5):  # laces
        lx = 250 + i * 38
        ly = 222 - i * 24
        draw.line(at([(lx, ly), (lx + 40, ly - 30)]), fill=WHITE, width=max(2, round(9 * scale)))
    draw.ellipse(
        [*at([(52, 214)])[0], *at([(72, 194)])[0]]
        if not flip
        else [*at([(72, 214)])[0], *at([(52, 194)])[0]],
        fill=WHITE,
    )


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def shadow(image: Image.Image, box: tuple[int, int, int, int], strength: int = 90) -> None:
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).ellipse(box, fill=strength)
    mask = mask.filter(ImageFilter.GaussianBlur(25))
    image.paste((40, 40, 40), mask=mask)


def side_view() -> Image.Image:
    image = gradient((1200, 1200), (236, 238, 242), (252, 252, 252))
    shadow(image, (170, 820, 1060, 900))
    draw = ImageDraw.Draw(image)
    shoe(draw, 200, 850, 1.45)
    draw.text((600, 1040), "RUN 42", fill=(150, 150, 155), font=font(56), anchor="mm")
    return image


def pair_view() -> Image.Image:
    image = gradient((1200, 1200), (205, 222, 240), (245, 248, 252))
    shadow(image, (120, 900, 1100, 990), 110)
    draw = ImageDraw.Draw(image)
    shoe(draw, 160, 930, 1.2)
    shoe(draw, 1060, 700, 1.1, flip=True)
    return image


def sole_view() -> Image.Image:
    image = Image.new("RGB", (800, 800), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    outline = [
        (400 + 170 * math.sin(t / 40 * 2 * math.pi) * (1.0 if t < 20 else 0.82),
         400 - 330 * math.cos(t / 40 * 2 * math.pi))
        for t in range(40)
    ]  # fmt: skip
    draw.polygon(outline, fill=WHITE, outline=GREY, width=6)
    inner = [(400 + (px - 400) * 0.86, 400 + (py - 400) * 0.9) for px, py in outline]
    draw.polygon(inner, fill=RED)
    for row in range(12):
        y = 150 + row * 45
        draw.line([(330, y), (470, y + 16)], fill=DARK_RED, width=10)
    draw.text((400, 760), "TALLE 42", fill=GREY, font=font(40), anchor="mm")
    return image


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    side_view().save(OUT / "sneaker-side.jpg", "JPEG", quality=88, optimize=True)
    pair_view().save(OUT / "sneaker-pair.jpg", "JPEG", quality=88, optimize=True)
    sole_view().save(OUT / "sneaker-sole.png", "PNG", optimize=True)
    for path in sorted(OUT.iterdir()):
        with Image.open(path) as image:
            print(f"{path.name}: {image.size[0]}x{image.size[1]}, {path.stat().st_size // 1024} KB")  # noqa: T201


if __name__ == "__main__":
    main()
