"""Decoding images safely: format checks, decompression-bomb limit, EXIF orientation,
JPEG draft mode, and conversion of every mode to 8-bit RGB."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

#: File extensions taken as images when walking folders.
IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".png",
        ".webp",
        ".tif",
        ".tiff",
        ".bmp",
        ".gif",
        ".heic",
        ".heif",
        ".avif",
        ".jxl",
        ".jp2",
        ".psd",
        ".svg",
        ".cr2",
        ".nef",
        ".dng",
        ".arw",
    }
)
#: Pillow formats we decode. Everything else is an "unsupported format" error.
SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF", "MPO"})


@dataclass(frozen=True)
class DecodedImage:
    """An image ready for an embedder, with the facts of the original file."""

    image: Image.Image  # 8-bit RGB, oriented; possibly reduced by JPEG draft mode
    format: str
    width: int  # of the original, after EXIF orientation
    height: int
    info: Image.Image  # the opened original (for metadata); not loaded


def open_image(data: bytes, *, max_pixels: int) -> Image.Image:
    """Open (not decode) image bytes, checking format and pixel count."""
    if not data:
        raise ImageError("empty", "zero-byte file; re-export or remove it")
    try:
        with warnings.catch_warnings():
            # We apply our own (configurable) pixel limit below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ImageError(
            "too-large", f"{e}; raise SMARTTAGS_MAX_PIXELS only if you trust the file"
        ) from e
    except UnidentifiedImageError as e:
        raise ImageError(
            "not-an-image", "not an image file (unrecognised content); check the file"
        ) from e
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError("corrupt", f"cannot read image header: {e}") from e
    fmt = im.format or "unknown"
    if fmt not in SUPPORTED_FORMATS:
        raise ImageError(
            "unsupported-format",
            f"unsupported image format {fmt}; convert it to JPEG or PNG",
        )
    pixels = im.size[0] * im.size[1]
    if pixels > max_pixels:
        raise ImageError(
            "too-large",
            f"{im.size[0]}x{im.size[1]} = {pixels:,} pixels is over the limit of "
            f"{max_pixels:,} (decompression bomb?); raise SMARTTAGS_MAX_PIXELS only if you "
            "trust the file",
        )
    return im


def decode(data: bytes, *, max_pixels: int, min_side: int | None = None) -> DecodedImage:
    """Decode image bytes to oriented 8-bit RGB.

    ``min_side``: the embedder's input size. JPEGs are then decoded in draft mode at
    the smallest power-of-two reduction that keeps both sides at least that large.
    """
    im = open_image(data, max_pixels=max_pixels)
    fmt = im.format or "unknown"
    orientation = (
        im.getexif().get(0x0112, 1) if fmt in ("JPEG", "MPO", "TIFF", "WEBP", "PNG") else 1
    )
    w, h = im.size
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    try:
        if min_side and fmt in ("JPEG", "MPO"):
            im.draft("RGB", (min_side, min_side))
        im.load()
        oriented = ImageOps.exif_transpose(im)
        rgb = to_rgb(oriented)
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise ImageError("corrupt", f"cannot decode image ({fmt}): {e}") from e
    return DecodedImage(image=rgb, format=fmt, width=w, height=h, info=im)


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composited on white."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        hi = float(arr.max()) if arr.size else 0.0
        if mode.startswith("I;16") or (mode == "I" and hi > 255):
            arr = arr / 65535.0 * 255.0 if hi > 255 else arr
        elif mode == "F":
            lo = float(arr.min()) if arr.size else 0.0
            arr = (arr - lo) / ((hi - lo) or 1.0) * 255.0
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "1":
        return im.convert("L").convert("RGB")
    return im.convert("RGB")  # L, CMYK, YCbCr, LAB, HSV
