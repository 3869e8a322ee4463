"""The `folder` data source: every image under a directory, decoded to square RGB arrays."""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lego_vae.data.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    TooLargeImageError,
    UnreadableImageError,
    load_image,
)
from lego_vae.errors import UserError

# Enough names for the user to find the broken files without flooding one warning line.
_MAX_NAMES_SHOWN = 5

# Bump when which files are read, or which are kept, changes: the data cache key holds it, so a cache
# decoded under older rules is not reused. 2: hidden and tool folders skipped, byte-identical copies kept once.
# 3: linked folders read (once each), images over data.max_pixels skipped before decoding.
READING_VERSION = 3

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


@dataclass
class Listing:
    """What scan_folder found under a root; every name is '/'-joined and relative to the root.

    images: every image file, sorted by name; skipped: the hidden and tool entries left out ("name/" for a
    folder); linked: the linked folders entered, "name/ -> target"; via_link: the names of the images
    reached through a link (a linked folder or a linked file); not_followed: the links to folders
    not entered because they were read already, each with why ("loop/ (a loop back to ./, a folder above
    it)", "again/ (= more/)"); broken: the symbolic links whose target does not exist.
    """

    images: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    linked: list[str] = field(default_factory=list)
    via_link: set[str] = field(default_factory=set)
    not_followed: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)


def _identity(path: Path) -> tuple[int, int]:
    """The folder a path leads to, links followed: equal for two paths to the same folder."""
    st = path.stat()
    return st.st_dev, st.st_ino


def scan_folder(root: str | os.PathLike[str]) -> Listing:
    """Every image under root, recursively, linked folders included, each folder read once (a Listing).

    Images are found by suffix, case-insensitively. Skipped are the folders below root that is_skipped names
    (their contents are not read) and the hidden files with an image suffix. Symbolic links are followed,
    to files and to folders, inside root or outside it; each folder is read once, under the first name that
    reaches it: the real folders under root come first, then the linked ones in order of their names (a
    link found inside a linked folder after those). A link to a folder read already (a loop back to a folder
    above it, or a second link to the same folder) is not entered, and a broken link is listed. Root
    itself may be anywhere, hidden, or a link.
    """
    root = Path(root)
    out = Listing()
    found: list[tuple[str, Path]] = []
    seen: dict[tuple[int, int], str] = {}  # each folder read: its name ("." for root), so none is read twice
    links: list[tuple[str, Path]] = []  # linked folders to read after the real ones, in order

    def rel(path: Path) -> str:
        return path.relative_to(root).as_posix()

    def walk(top: Path, through_link: bool) -> None:
        # followlinks=False: the linked folders are queued and entered one by one, each checked against seen.
        for dirpath, dirnames, filenames in os.walk(top):
            here = Path(dirpath)
            seen.setdefault(_identity(here), rel(here))
            kept = []
            for d in sorted(dirnames):
                path = here / d
                if is_skipped(d):
                    out.skipped.append(rel(path) + "/")
                elif path.is_symlink():
                    links.append((rel(path), path))
                elif (where := seen.get(_identity(path))) is not None:  # a folder a link already read
                    out.not_followed.append(f"{rel(path)}/ (= {where}/)")
                else:
                    kept.append(d)
            dirnames[:] = kept
            for name in filenames:
                path = here / name
                if path.is_symlink() and not os.path.exists(path):
                    # os.walk lists a broken link among the files, whatever it pointed to; os.path.exists is
                    # False, not an error, for a link to itself or to a place this user may not look into.
                    if not is_skipped(name):
                        out.broken.append(f"{rel(path)} -> {os.readlink(path)}")
                    continue
                if not name.lower().endswith(IMAGE_SUFFIXES):
                    continue
                if is_skipped(name):
                    out.skipped.append(rel(path))
                elif os.path.isfile(path):
                    # Sort by the '/'-joined relative name so the order is the same on every platform.
                    found.append((rel(path), path))
                    if through_link or path.is_symlink():
                        out.via_link.add(rel(path))

    walk(root, through_link=False)
    # Breadth first: the links of the real tree in name order, then those found inside linked folders.
    links.sort()
    while links:
        name, path = links.pop(0)
        target = path.resolve()
        if path.parent.resolve().is_relative_to(target):
            # Entering it would read this folder again, or everything around root (a link to root's parent).
            back = seen.get(_identity(path))
            to = f"{back}/" if back is not None else f"'{target}'"
            out.not_followed.append(f"{name}/ (a loop back to {to}, a folder above it)")
        elif (where := seen.get(_identity(path))) is not None:
            out.not_followed.append(f"{name}/ (= {where}/)")
        else:
            out.linked.append(f"{name}/ -> {os.readlink(path)}")
            before = len(links)
            walk(path, through_link=True)
            links[before:] = sorted(links[before:])
    found.sort(key=lambda item: item[0])
    out.images = [path for _, path in found]
    for names in (out.skipped, out.linked, out.not_followed, out.broken):
        names.sort()
    return out


def find_images(root: str | os.PathLike[str]) -> list[Path]:
    """Every image under root (recursive, links followed, each folder once; hidden and tool folders skipped),
    by suffix case-insensitively, sorted by '/'-joined relative name."""
    return scan_folder(root).images


def file_digest(path: Path) -> bytes:
    """A hash of the file's bytes (BLAKE2b, 128 bits): equal for byte-identical files. Raises OSError."""
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


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def load_folder(
    root: str | os.PathLike[str], size: int, limit: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, list[str]]:
    """Decode every image under root into an (N, size, size, 3) uint8 array and the relative names of those kept.

    Hidden and tool folders are skipped and linked folders read once each (scan_folder), and byte-identical
    files are kept once, under the name with the fewest folders, then the shortest, then the first in sorted
    order, so no image can sit in two splits. Images of more than max_pixels pixels are skipped before
    decoding. Skipped entries, images read through links, links not entered, broken links, dropped copies,
    images over the limit and unreadable files are one warning line each. Images come in sorted order of
    their names; limit: keep at most this many distinct images (the first).
    Raises UserError for a bad limit, a missing root, or a root with no readable image.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise UserError(f"data.num_images: expected a positive integer or null, got {limit!r}")
    root = Path(root).expanduser()
    if not root.exists():
        raise UserError(f"data.root: folder '{root}' does not exist")
    if not root.is_dir():
        raise UserError(f"data.root: '{root}' is not a folder")
    listing = scan_folder(root)
    paths, hidden = listing.images, listing.skipped
    if not paths:
        suffixes = ", ".join(IMAGE_SUFFIXES)
        where = f"; skipped as hidden or tool entries: {_list_names(hidden)}" if hidden else ""
        broken = f"; broken symbolic links: {_list_names(listing.broken)}" if listing.broken else ""
        raise UserError(f"data.root: no images ({suffixes}) under '{root}'{where}{broken}")

    # Byte-identical files are one image: hash every file first, keep each image under its most
    # original-looking name (fewest folders, then shortest, then first in order: face.jpg before
    # backup/face.jpg and "face (1).jpg"), so a copy added later changes neither its name nor its split.
    skipped: list[str] = []
    too_large: dict[str, str] = {}  # name: its size, for the images over max_pixels
    first_reason = ""  # of the unreadable files
    names: dict[Path, str] = {path: path.relative_to(root).as_posix() for path in paths}
    digests: dict[Path, bytes] = {}
    for path in paths:
        try:
            digests[path] = file_digest(path)
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
            pixels[len(kept)] = load_image(path, size, max_pixels)
        except TooLargeImageError as exc:
            dims = f"{exc.size[0]} x {exc.size[1]} = " if exc.size else ""
            too_large[names[path]] = f"{dims}{exc.pixels:,} pixels"
            continue
        except UnreadableImageError as exc:
            skipped.append(names[path])
            first_reason = first_reason or str(exc)
            continue
        kept.append(names[path])

    skipped.sort()
    large = [f"{name} ({too_large[name]})" for name in sorted(too_large)]
    over = f"over the limit of {max_pixels:,} pixels (data.max_pixels)"
    if not kept:
        failed = sorted(skipped + list(too_large))
        reasons = "; ".join(([f"first error: {first_reason}"] if skipped else [])
                            + ([f"{_list_names(large)} {over}"] if large else []))
        raise UserError(
            f"data.root: no readable image under '{root}': all {len(failed)} image files failed to decode "
            f"({_list_names(failed)}); {reasons}"
        )
    if hidden:
        warnings.warn(
            f"skipped {len(hidden)} hidden or tool entr{'ies' if len(hidden) != 1 else 'y'} under '{root}' "
            f"(thumbnails, checkpoints, recycle bins: not read as faces): {_list_names(hidden)}",
            stacklevel=2,
        )
    if through := sum(name in listing.via_link for name in kept):
        folders = f" ({_plural(len(listing.linked), 'linked folder', 'linked folders')}: " \
                  f"{_list_names(listing.linked)})" if listing.linked else ""
        warnings.warn(f"read {through} of {len(kept)} images under '{root}' through symbolic links{folders}",
                      stacklevel=2)
    if listing.not_followed:
        warnings.warn(
            f"did not enter {_plural(len(listing.not_followed), 'linked folder', 'linked folders')} under '{root}' "
            f"(each folder is read once): {_list_names(listing.not_followed)}",
            stacklevel=2,
        )
    if listing.broken:
        warnings.warn(
            f"skipped {_plural(len(listing.broken), 'broken symbolic link', 'broken symbolic links')} under "
            f"'{root}' (nothing at the target): {_list_names(listing.broken)}",
            stacklevel=2,
        )
    if copies:
        warnings.warn(
            f"dropped {len(copies)} byte-identical cop{'ies' if len(copies) != 1 else 'y'} under '{root}' "
            f"(each image is read once): {_list_names(copies)}",
            stacklevel=2,
        )
    if large:
        warnings.warn(
            f"skipped {_plural(len(large), 'image', 'images')} {over} under '{root}', before decoding: "
            f"{_list_names(large)}",
            stacklevel=2,
        )
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} unreadable image{'s' if len(skipped) != 1 else ''} under '{root}': "
            f"{_list_names(skipped)}; first error: {first_reason}",
            stacklevel=2,
        )
    if len(kept) < wanted:
        # Copy so the unused tail of the preallocated buffer is freed.
        pixels = pixels[: len(kept)].copy()
    return pixels, kept
