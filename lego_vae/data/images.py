"""Decoding one image file into the project's pixel format: a square (size, size, 3) uint8 RGB array."""

from __future__ import annotations

import numbers
import os
import re
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image, ImageOps

from lego_vae.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

# The most pixels decoded by default (data.max_pixels): Pillow's own decompression-bomb threshold, past which
# it warns. Decoding takes about 23 bytes a pixel at its peak (the RGBA copies of compositing), so 2 GB here.
DEFAULT_MAX_PIXELS = 89_478_485
# Pillow refuses to open an image of more pixels than this (DecompressionBombError), whatever our limit.
PILLOW_MAX_PIXELS = 2 * DEFAULT_MAX_PIXELS
_BOMB_PIXELS = re.compile(r"Image size \((\d+) pixels\)")  # how DecompressionBombError names the pixel count

# Modes whose samples do not fit Pillow's 8-bit conversions: convert("L") clips them at 255, not scales them.
_WIDE_INT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")

# What Pillow raises for unreadable files (some plugins let struct/EOF/value errors escape on bad headers).
_DECODE_ERRORS = (OSError, ValueError, EOFError, SyntaxError, struct.error, Image.DecompressionBombError)


class UnreadableImageError(UserError):
    """An image file that cannot be opened or fully decoded."""


class TooLargeImageError(UnreadableImageError):
    """An image whose header gives more pixels than `limit` (the setting `key`), refused before decoding.

    size: (width, height), or None when Pillow refused to open it (its own limit) and only `pixels` is known.
    """

    def __init__(self, path: str | os.PathLike[str], pixels: int, size: tuple[int, int] | None, limit: int,
                 key: str) -> None:
        self.pixels, self.size, self.limit, self.key = pixels, size, limit, key
        super().__init__(f"cannot read image '{os.fspath(path)}': {self.reason()}")

    def pixels_text(self) -> str:
        """'14000 x 14000 = 196,000,000 pixels', or '196,000,000 pixels' when the size is not known."""
        return (f"{self.size[0]} x {self.size[1]} = " if self.size else "") + f"{self.pixels:,} pixels"

    def reason(self) -> str:
        """'14000 x 14000 = 196,000,000 pixels, over the limit of 89,478,485 (data.max_pixels)'."""
        return f"{self.pixels_text()}, over the limit of {self.limit:,} ({self.key})"


def _check_size(size: int) -> None:
    """Reject a non-positive output size, a programming error rather than a bad file."""
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")


def _to_rgba(img: Image.Image) -> Image.Image:
    """Any Pillow mode as RGBA, honouring palette/tRNS transparency; wide grey scaled to 8 bits first."""
    if img.mode in _WIDE_INT_MODES or img.mode == "F":
        raw = np.asarray(img)
        # Float images are conventionally 0..1; Pillow decodes 16-bit PNG/PGM samples into the I modes.
        scaled = raw.astype(np.float64) * (255.0 if img.mode == "F" else 255.0 / 65535)
        gray = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
        alpha = np.full_like(gray, 255)
        transparent = img.info.get("transparency")
        if isinstance(transparent, (int, float)) and img.mode != "F":
            alpha[raw == transparent] = 0
        return Image.fromarray(np.dstack([gray, gray, gray, alpha]))
    if img.mode == "RGBA":
        return img
    try:
        return img.convert("RGBA")
    except ValueError:  # modes such as HSV or LAB have no direct RGBA path but do convert to RGB
        return img.convert("RGB").convert("RGBA")


def to_rgb_square(img: Image.Image, size: int) -> np.ndarray:
    """On white, centre-cropped to a square, resized with antialiasing: (size, size, 3) uint8 RGB."""
    _check_size(size)
    rgba = _to_rgba(img)
    rgb = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    side = min(rgb.size)
    left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
    # box= crops and resizes in one pass, without a cropped copy.
    box = (left, top, left + side, top + side)
    return np.array(rgb.resize((int(size), int(size)), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0))


@contextmanager
def open_image(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS,
               key: str = "data.max_pixels") -> Iterator[Image.Image]:
    """The image at path, opened (header read, no pixel decoded yet) with no more than max_pixels pixels.

    Every image a user gives is opened here: one over the limit raises TooLargeImageError (naming key, the
    setting of the limit) before its pixels take any memory, and Pillow's DecompressionBombWarning, which
    only repeats that check, never reaches the user. Raises UnreadableImageError for a file that is no image.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError as exc:
        found = _BOMB_PIXELS.search(str(exc))
        pixels = int(found.group(1)) if found else PILLOW_MAX_PIXELS + 1
        raise TooLargeImageError(path, pixels, None, min(max_pixels, PILLOW_MAX_PIXELS), key) from None
    except _DECODE_ERRORS as exc:
        raise _unreadable(path, exc) from exc
    with img:
        width, height = img.size
        if width * height > max_pixels:
            raise TooLargeImageError(path, width * height, (width, height), max_pixels, key)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # crop and transpose check again
            yield img


def _unreadable(path: str | os.PathLike[str], exc: BaseException) -> UnreadableImageError:
    """The one-line error for a file Pillow could not open or decode: the path and Pillow's reason."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return UnreadableImageError(f"cannot read image '{os.fspath(path)}': {reason}")


def load_image(path: str | os.PathLike[str], size: int, max_pixels: int = DEFAULT_MAX_PIXELS,
               key: str = "data.max_pixels") -> np.ndarray:
    """Decode one image file fully and return to_rgb_square of it, upright by its EXIF orientation.

    Raises TooLargeImageError for more than max_pixels pixels (open_image) and UnreadableImageError for a
    file that is no image, truncated or corrupt.
    """
    _check_size(size)  # before the try, so that a caller's bad size is not mistaken for a bad file
    with open_image(path, max_pixels, key) as img:
        try:
            img.load()  # open() only reads the header: truncation surfaces here
            return to_rgb_square(ImageOps.exif_transpose(img), size)
        except _DECODE_ERRORS as exc:
            raise _unreadable(path, exc) from exc
