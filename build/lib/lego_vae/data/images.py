"""Decoding one image file into the project's pixel format: a square (size, size, 3) uint8 RGB array."""

from __future__ import annotations

import numbers
import os
import struct

import numpy as np
from PIL import Image, ImageOps

from lego_vae.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

# Modes whose samples do not fit Pillow's 8-bit conversions: convert("L") clips them at 255 instead of scaling.
_WIDE_INT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
_SIXTEEN_BIT_MAX = 65535

# What Pillow raises for unreadable files; DecompressionBombError is not an OSError, and
# some plugins let struct/EOF/value errors escape on malformed headers.
_DECODE_ERRORS = (OSError, ValueError, EOFError, SyntaxError, struct.error, Image.DecompressionBombError)


class UnreadableImageError(UserError):
    """An image file that cannot be opened or fully decoded."""


def _check_size(size: int) -> None:
    """Reject a non-positive output size, a programming error rather than a bad file."""
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")


def _wide_to_la(img: Image.Image) -> Image.Image:
    """Scale a 16/32-bit or float grayscale image to 8-bit "LA", keeping a tRNS transparent value as alpha."""
    raw = np.asarray(img)
    if img.mode == "F":
        # Float images are conventionally normalised to 0..1.
        scaled = raw.astype(np.float64) * 255.0
    else:
        # Pillow decodes 16-bit PNG/PGM samples into these modes, so 0..65535 is their range.
        scaled = raw.astype(np.float64) * (255.0 / _SIXTEEN_BIT_MAX)
    gray = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    alpha = np.full(gray.shape, 255, dtype=np.uint8)
    transparent = img.info.get("transparency")
    if isinstance(transparent, (int, float)) and img.mode != "F":
        alpha[raw == transparent] = 0
    return Image.merge("LA", (Image.fromarray(gray, "L"), Image.fromarray(alpha, "L")))


def _to_rgba(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGBA, honouring palette/tRNS transparency."""
    if img.mode in _WIDE_INT_MODES or img.mode == "F":
        img = _wide_to_la(img)
    if img.mode == "RGBA":
        return img
    try:
        return img.convert("RGBA")
    except ValueError:
        # Modes such as HSV or LAB have no direct RGBA path but do convert to RGB.
        return img.convert("RGB").convert("RGBA")


def to_rgb_square(img: Image.Image, size: int) -> np.ndarray:
    """Alpha-composite on white, convert to RGB, centre-crop to a square, resize with antialiasing; (size, size, 3) uint8."""
    _check_size(size)
    rgba = _to_rgba(img)
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    width, height = rgb.size
    side = min(width, height)
    left = (width - side) // 2
    top = (height - side) // 2
    # box= crops and resizes in one pass, without materialising the cropped copy first.
    square = rgb.resize(
        (int(size), int(size)),
        Image.Resampling.LANCZOS,
        box=(left, top, left + side, top + side),
        reducing_gap=3.0,
    )
    return np.asarray(square, dtype=np.uint8).copy()


def load_image(path: str | os.PathLike[str], size: int) -> np.ndarray:
    """Decode one image file fully (raise on truncated/corrupt data) and return to_rgb_square of it."""
    # Checked before the try so a caller's bad size is not mistaken for a bad file.
    _check_size(size)
    try:
        with Image.open(path) as img:
            # open() only reads the header; load() decodes every byte so truncation surfaces here.
            img.load()
            upright = ImageOps.exif_transpose(img)
            return to_rgb_square(upright, size)
    except _DECODE_ERRORS as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UnreadableImageError(f"cannot read image '{os.fspath(path)}': {reason}") from exc
