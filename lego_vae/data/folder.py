"""The `folder` data source: every image under a directory, decoded to square RGB arrays."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np

from lego_vae.data.images import IMAGE_SUFFIXES, UnreadableImageError, load_image
from lego_vae.errors import UserError

# Enough names for the user to find the broken files without flooding one warning line.
_MAX_NAMES_SHOWN = 5

# Bump when which files are read, or which are kept, changes: the data cache key holds it, so a cache
# decoded under older rules is not reused. 2: hidden and tool folders skipped, byte-identical copies kept once.
READING_VERSION = 2

# Folders that tools write beside pictures (thumbnails, metadata, recycle bins, snapshots): never faces.
# Compared case-insensitively, as Windows and NAS file systems treat names. Hidden names (".*") are
# skipped as well: .ipynb_checkpoints, .thumbnails, .Trash-1000, .AppleDouble, .DS_Store, ._* ...
TOOL_FOLDERS = frozenset(name.casefold() for name in (
    "__MACOSX",  # resource forks that macOS Finder puts into zips
    "@eaDir", "#recycle", "#snapshot",  # Synology DSM: thumbnails and metadata, recycle bin, snapshots
    "@Recycle", "@Recently-Snapshot", "@__thumb",  # QNAP QTS: recycle bin, snapshots, thumbnails
    "$RECYCLE.BIN", "RECYCLER", "System Volume Information",  # Windows: recycle bins, restore points
    "lost+found",  # fragments that fsck recovered on ext file systems
))


def is_skipped(name: str) -> bool:
    """True for a file or folder name that holds no face: a hidden name (".*") or one of TOOL_FOLDERS."""
    return name.startswith(".") or name.casefold() in TOOL_FOLDERS


def scan_folder(root: str | os.PathLike[str]) -> tuple[list[Path], list[str]]:
    """(every image under root, the hidden and tool entries skipped), both sorted by '/'-joined relative name.

    Images are found recursively by suffix, case-insensitively. Skipped are the folders below root that
    is_skipped names (their contents are not read; each is listed once, as "name/") and the hidden files
    with an image suffix. Root itself may be anywhere, hidden or not.
    """
    root = Path(root)
    found: list[tuple[str, Path]] = []
    skipped: list[str] = []
    # os.walk without followlinks cannot loop on a symlink cycle; symlinked files are still listed.
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        skipped += [(here / d).relative_to(root).as_posix() + "/" for d in dirnames if is_skipped(d)]
        dirnames[:] = [d for d in dirnames if not is_skipped(d)]
        for name in filenames:
            if not name.lower().endswith(IMAGE_SUFFIXES):
                continue
            path = here / name
            if is_skipped(name):
                skipped.append(path.relative_to(root).as_posix())
            elif path.is_file():
                # Sort by the '/'-joined relative name so the order is the same on every platform.
                found.append((path.relative_to(root).as_posix(), path))
    found.sort(key=lambda item: item[0])
    return [path for _, path in found], sorted(skipped)


def find_images(root: str | os.PathLike[str]) -> list[Path]:
    """Every image under root (recursive; hidden and tool folders skipped), by suffix case-insensitively, sorted."""
    return scan_folder(root)[0]


def _digest(path: Path) -> bytes:
    """A hash of the file's bytes (BLAKE2b, 128 bits): equal for byte-identical files."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def _originality(name: str) -> tuple[int, int, str]:
    """Sort key of the copies of one image: the name with the fewest folders, then the shortest, then the first."""
    return name.count("/"), len(name), name


def _list_names(names: list[str]) -> str:
    """The first few names, comma-separated, with a count of the rest."""
    shown = ", ".join(names[:_MAX_NAMES_SHOWN])
    rest = len(names) - _MAX_NAMES_SHOWN
    return f"{shown}, ... ({rest} more)" if rest > 0 else shown


def load_folder(
    root: str | os.PathLike[str], size: int, limit: int | None = None
) -> tuple[np.ndarray, list[str]]:
    """Decode every image under root into an (N, size, size, 3) uint8 array and the relative names of those kept.

    Hidden and tool folders are skipped (scan_folder), and byte-identical files are kept once, under the
    name with the fewest folders, then the shortest, then the first in sorted order, so no image can sit in
    two splits; skipped entries, dropped copies and unreadable files are one warning line each. Images
    come in sorted order of their names; limit: keep at most this many distinct images (the first).
    Raises UserError for a bad limit, a missing root, or a root with no readable image.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise UserError(f"data.num_images: expected a positive integer or null, got {limit!r}")
    root = Path(root).expanduser()
    if not root.exists():
        raise UserError(f"data.root: folder '{root}' does not exist")
    if not root.is_dir():
        raise UserError(f"data.root: '{root}' is not a folder")
    paths, hidden = scan_folder(root)
    if not paths:
        suffixes = ", ".join(IMAGE_SUFFIXES)
        where = f"; skipped as hidden or tool entries: {_list_names(hidden)}" if hidden else ""
        raise UserError(f"data.root: no images ({suffixes}) under '{root}'{where}")

    # Byte-identical files are one image: hash every file first, keep each image under its most
    # original-looking name (fewest folders, then shortest, then first in order: face.jpg before
    # backup/face.jpg and "face (1).jpg"), so a copy added later changes neither its name nor its split.
    skipped: list[str] = []
    first_reason = ""
    names: dict[Path, str] = {path: path.relative_to(root).as_posix() for path in paths}
    digests: dict[Path, bytes] = {}
    for path in paths:
        try:
            digests[path] = _digest(path)
        except OSError as exc:
            skipped.append(names[path])
            first_reason = first_reason or str(exc)
    canonical: dict[bytes, str] = {}
    for path, digest in digests.items():
        name = names[path]
        if digest not in canonical or _originality(name) < _originality(canonical[digest]):
            canonical[digest] = name
    copies = [f"{names[p]} (= {canonical[d]})" for p, d in digests.items() if names[p] != canonical[d]]
    unique = [path for path, digest in digests.items() if names[path] == canonical[digest]]

    wanted = len(unique) if limit is None else min(limit, len(unique))
    pixels = np.empty((wanted, size, size, 3), dtype=np.uint8)
    kept: list[str] = []
    for path in unique:
        if len(kept) == wanted:
            break
        try:
            pixels[len(kept)] = load_image(path, size)
        except UnreadableImageError as exc:
            skipped.append(names[path])
            first_reason = first_reason or str(exc)
            continue
        kept.append(names[path])

    skipped.sort()
    if not kept:
        raise UserError(
            f"data.root: no readable image under '{root}': all {len(skipped)} image files failed to decode "
            f"({_list_names(skipped)}); first error: {first_reason}"
        )
    if hidden:
        warnings.warn(
            f"skipped {len(hidden)} hidden or tool entr{'ies' if len(hidden) != 1 else 'y'} under '{root}' "
            f"(thumbnails, checkpoints, recycle bins: not read as faces): {_list_names(hidden)}",
            stacklevel=2,
        )
    if copies:
        warnings.warn(
            f"dropped {len(copies)} byte-identical cop{'ies' if len(copies) != 1 else 'y'} under '{root}' "
            f"(each image is read once): {_list_names(copies)}",
            stacklevel=2,
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
