"""Decoding: orientation, colour modes, draft mode, and each kind of bad input."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from indexer.errors import ImageError
from indexer.images import decode, to_rgb

from .conftest import jpeg_bytes

LIMIT = 100_000_000


def png_bytes(im: Image.Image, **save: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", **save)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that claims a huge size in its header (how decompression bombs look)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _chunk(b"IEND", b"")
    )


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    data = jpeg_bytes((80, 40), exif=exif.tobytes())
    img = decode(data, max_pixels=LIMIT)
    assert (img.width, img.height) == (40, 80)
    assert img.image.size == (40, 80)
    assert img.format == "JPEG"


def test_jpeg_draft_mode_decodes_large_photos_reduced() -> None:
    data = jpeg_bytes((2000, 1600))
    img = decode(data, max_pixels=LIMIT, min_side=224)
    assert (img.width, img.height) == (2000, 1600)  # facts of the original
    # Draft picks the largest power-of-two reduction that keeps both sides >= 224.
    assert img.image.size == (500, 400)


def test_full_decode_without_min_side() -> None:
    img = decode(jpeg_bytes((2000, 1600)), max_pixels=LIMIT)
    assert img.image.size == (2000, 1600)


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("L", 77, (77, 77, 77)),
        ("CMYK", (0, 0, 0, 0), (255, 255, 255)),
        ("1", 1, (255, 255, 255)),
        ("I;16", 65535, (255, 255, 255)),
        ("I;16", 32896, (128, 128, 128)),
        ("I", 1000, (3, 3, 3)),
    ],
)
def test_modes_become_8bit_rgb(mode: str, value: object, expected: tuple[int, int, int]) -> None:
    out = to_rgb(Image.new(mode, (4, 4), value))  # type: ignore[arg-type]
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == expected


def test_rgba_is_composited_on_white() -> None:
    im = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    im.putpixel((1, 1), (255, 0, 0, 255))
    out = to_rgb(im)
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 1)) == (255, 0, 0)


def test_palette_with_transparency_on_white() -> None:
    im = Image.new("P", (4, 4), 0)
    im.putpalette([0, 0, 255] + [0, 255, 0] * 255)
    im.info["transparency"] = 0
    img = decode(png_bytes(im, transparency=0), max_pixels=LIMIT)
    assert img.image.getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_png_decodes() -> None:
    arr = np.full((8, 8), 65535, dtype=np.uint16)
    data = png_bytes(Image.fromarray(arr))
    img = decode(data, max_pixels=LIMIT)
    assert img.image.mode == "RGB"
    assert img.image.getpixel((0, 0)) == (255, 255, 255)


def test_cmyk_jpeg_decodes() -> None:
    buf = io.BytesIO()
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(buf, "JPEG")
    img = decode(buf.getvalue(), max_pixels=LIMIT)
    r, g, b = img.image.getpixel((8, 8))  # type: ignore[misc]
    assert r > 200 and g < 60 and b < 60


@pytest.mark.parametrize(
    ("data", "reason", "fragment"),
    [
        (b"", "empty", "zero-byte"),
        (b"hello, I am text pretending to be a JPEG\n" * 20, "not-an-image", "not an image"),
        (jpeg_bytes((300, 200))[:400], "corrupt", "cannot read image header"),
        (jpeg_bytes((300, 200))[:1500], "corrupt", "truncated"),
        (png_header_only(30_000, 30_000), "too-large", "SMARTTAGS_MAX_PIXELS"),
        (png_header_only(12_000, 10_000), "too-large", "120,000,000 pixels"),
    ],
    ids=[
        "zero-byte",
        "text",
        "cut-in-header",
        "truncated",
        "bomb-over-pillow-limit",
        "bomb-over-our-limit",
    ],
)
def test_bad_input_has_a_reason(data: bytes, reason: str, fragment: str) -> None:
    with pytest.raises(ImageError) as info:
        decode(data, max_pixels=LIMIT)
    assert info.value.reason == reason
    assert fragment in str(info.value)


def test_unsupported_format_names_it() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PCX")
    with pytest.raises(ImageError) as info:
        decode(buf.getvalue(), max_pixels=LIMIT)
    assert info.value.reason == "unsupported-format"
    assert "PCX" in str(info.value) and "convert it to JPEG or PNG" in str(info.value)


def test_pixel_limit_is_configurable() -> None:
    data = jpeg_bytes((100, 100))
    assert decode(data, max_pixels=10_000).width == 100
    with pytest.raises(ImageError, match=r"10,000 pixels|9,999"):
        decode(data, max_pixels=9_999)
