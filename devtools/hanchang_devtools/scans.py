"""Scanned pages made from known text, for OCR tests and benchmarks: Korean text drawn with a
Korean font (Debian's fonts-noto-cjk) at 300 dpi, slightly rotated and noised like a scanner's
output, saved as images or as an image-only PDF (no text layer, as a scan is)."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/nanum/NanumGothic.ttf",
)
DPI = 300
A4 = (2480, 3508)  # pixels at 300 dpi


def korean_font() -> str | None:
    return next((f for f in FONT_CANDIDATES if Path(f).exists()), None)


def render_page(text: str, *, size_pt: float = 11, seed: int = 0, noise: bool = True):
    """One A4 page of `text` as a greyscale PIL image."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    font_path = korean_font()
    if font_path is None:
        raise RuntimeError("no Korean font: apt-get install fonts-noto-cjk")
    font = ImageFont.truetype(font_path, int(size_pt * DPI / 72))
    page = Image.new("L", A4, 255)
    draw = ImageDraw.Draw(page)
    margin, y = 240, 240
    line_height = int(font.size * 1.6)
    for paragraph in text.split("\n"):
        for line in textwrap.wrap(paragraph, width=38) or [""]:
            draw.text((margin, y), line, font=font, fill=0)
            y += line_height
            if y > A4[1] - margin:
                break
    if noise:
        rng = random.Random(seed)
        page = page.rotate(rng.uniform(-0.6, 0.6), fillcolor=255, resample=Image.BICUBIC)
        page = page.filter(ImageFilter.GaussianBlur(0.6))
        pixels = page.load()
        for _ in range(3000):  # specks
            pixels[rng.randrange(A4[0]), rng.randrange(A4[1])] = rng.randrange(0, 160)
    return page


def page_texts(text: str, lines_per_page: int = 30, width: int = 38) -> list[str]:
    """`text` cut into pages of about `lines_per_page` wrapped lines."""
    pages, current, count = [], [], 0
    for paragraph in text.split("\n"):
        wrapped = len(textwrap.wrap(paragraph, width=width)) or 1
        if current and count + wrapped > lines_per_page:
            pages.append("\n".join(current))
            current, count = [], 0
        current.append(paragraph)
        count += wrapped
    if current:
        pages.append("\n".join(current))
    return pages


def scanned_pdf(texts: list[str], path: Path) -> Path:
    """An image-only PDF, one page per text (as a scanner makes it)."""
    images = [render_page(text, seed=i) for i, text in enumerate(texts)]
    images[0].save(path, "PDF", resolution=DPI, save_all=True, append_images=images[1:])
    return path


def scanned_image(text: str, path: Path) -> Path:
    """One scanned page as PNG, JPEG or TIFF (by the file's suffix)."""
    render_page(text).save(path, dpi=(DPI, DPI))
    return path
