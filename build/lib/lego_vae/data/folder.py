"""The `folder` data source: every image under a directory, decoded to square RGB arrays."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from lego_vae.data.images import IMAGE_SUFFIXES, UnreadableImageError, load_image
from lego_vae.errors import UserError

# Enough names for the user to find the broken files without flooding one warning line.
_MAX_NAMES_SHOWN = 5


def _is_junk(name: str) -> bool:
    """True for macOS AppleDouble side files, which carry an image suffix but hold no image."""
    return name.startswith("._")


def find_images(root: str | os.PathLike[str]) -> list[Path]:
    """Every image under root (recursive), by suffix case-insensitively, sorted for determinism."""
    root = Path(root)
    found: list[tuple[str, Path]] = []
    # os.walk without followlinks cannot loop on a symlink cycle; symlinked files are still listed.
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__MACOSX"]
        for name in filenames:
            if _is_junk(name) or not name.lower().endswith(IMAGE_SUFFIXES):
                continue
            path = Path(dirpath, name)
            if path.is_file():
                # Sort by the '/'-joined relative name so the order is the same on every platform.
                found.append((path.relative_to(root).as_posix(), path))
    found.sort(key=lambda item: item[0])
    return [path for _, path in found]


def _list_names(names: list[str]) -> str:
    """The first few names, comma-separated, with a count of the rest."""
    shown = ", ".join(names[:_MAX_NAMES_SHOWN])
    rest = len(names) - _MAX_NAMES_SHOWN
    return f"{shown}, ... ({rest} more)" if rest > 0 else shown


def load_folder(
    root: str | os.PathLike[str], size: int, limit: int | None = None
) -> tuple[np.ndarray, list[str]]:
    """Decode every image under root into an (N, size, size, 3) uint8 array and the relative names of those kept."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise UserError(f"data.num_images: expected a positive integer or null, got {limit!r}")
    root = Path(root).expanduser()
    if not root.exists():
        raise UserError(f"data.root: folder '{root}' does not exist")
    if not root.is_dir():
        raise UserError(f"data.root: '{root}' is not a folder")
    paths = find_images(root)
    if not paths:
        suffixes = ", ".join(IMAGE_SUFFIXES)
        raise UserError(f"data.root: no images ({suffixes}) under '{root}'")

    wanted = len(paths) if limit is None else min(limit, len(paths))
    pixels = np.empty((wanted, size, size, 3), dtype=np.uint8)
    kept: list[str] = []
    skipped: list[str] = []
    first_reason = ""
    for path in paths:
        if len(kept) == wanted:
            break
        name = path.relative_to(root).as_posix()
        try:
            pixels[len(kept)] = load_image(path, size)
        except UnreadableImageError as exc:
            skipped.append(name)
            first_reason = first_reason or str(exc)
            continue
        kept.append(name)

    if not kept:
        raise UserError(
            f"data.root: no readable image under '{root}': all {len(skipped)} image files failed to decode "
            f"({_list_names(skipped)}); first error: {first_reason}"
        )
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} unreadable image{'s' if len(skipped) != 1 else ''} under '{root}': "
            f"{_list_names(skipped)}",
            stacklevel=2,
        )
    if len(kept) < wanted:
        # Copy so the unused tail of the preallocated buffer is freed.
        pixels = pixels[: len(kept)].copy()
    return pixels, kept
