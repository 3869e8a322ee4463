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

# Bump when which files are read, or which are kept, changes: the data cache key holds it. 2: hidden and tool
# folders skipped, byte-identical copies kept once. 3: linked folders read once each, data.max_pixels.
READING_VERSION = 3

# Folders that tools write beside pictures, never faces, compared case-insensitively as Windows and NAS file
# systems do. Hidden names (".*": .ipynb_checkpoints, .Trash-1000, .DS_Store, ._* ...) are skipped as well.
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
    """What scan_folder found under a root, each name '/'-joined and relative to it: the image files
    (sorted), the hidden and tool entries skipped ("name/" for a folder), the linked folders entered
    ("name/ -> target"), the images reached through a link, the links to folders not entered with why
    ("again/ (= more/)"), and the broken links."""

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
    """Every image under root (by suffix, case-insensitively), recursively, each folder read once.

    Left out: the folders below root that is_skipped names and hidden image files. Links to files and folders
    are followed, inside root or outside it; each folder is read under the first name that reaches it: the
    real folders first, then the linked ones in order of their names (links inside linked folders after
    those). A link to a folder read already (a loop, a second link) is not entered; broken links are listed.
    """
    root = Path(root)
    out = Listing()
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
                    # Broken (os.path.exists is False, not an error, for a loop or a place out of reach).
                    if not is_skipped(name):
                        out.broken.append(f"{rel(path)} -> {os.readlink(path)}")
                elif name.lower().endswith(IMAGE_SUFFIXES) and is_skipped(name):
                    out.skipped.append(rel(path))
                elif name.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(path):
                    out.images.append(path)
                    if through_link or path.is_symlink():
                        out.via_link.add(rel(path))

    walk(root, through_link=False)
    # Breadth first: the links of the real tree in name order, then those found inside linked folders.
    links.sort()
    while links:
        name, path = links.pop(0)
        target, where = path.resolve(), seen.get(_identity(path))
        if path.parent.resolve().is_relative_to(target):
            # Entering it would read this folder again, or everything around root (a link to root's parent).
            to = f"{where}/" if where is not None else f"'{target}'"
            out.not_followed.append(f"{name}/ (a loop back to {to}, a folder above it)")
        elif where is not None:
            out.not_followed.append(f"{name}/ (= {where}/)")
        else:
            out.linked.append(f"{name}/ -> {os.readlink(path)}")
            before = len(links)
            walk(path, through_link=True)
            links[before:] = sorted(links[before:])
    out.images.sort(key=rel)  # by the '/'-joined name, so the order is the same on every platform
    for names in (out.skipped, out.linked, out.not_followed, out.broken):
        names.sort()
    return out


def find_images(root: str | os.PathLike[str]) -> list[Path]:
    """Every image under root as scan_folder finds it, sorted by '/'-joined relative name."""
    return scan_folder(root).images


def hash_file(path: str | os.PathLike[str], digest):
    """digest (a hashlib object) updated with the file's bytes, read in chunks; returns it. Raises OSError."""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest


def file_digest(path: Path) -> bytes:
    """A hash of the file's bytes (BLAKE2b, 128 bits): equal for byte-identical files. Raises OSError."""
    return hash_file(path, hashlib.blake2b(digest_size=16)).digest()


def list_names(names: list[str], shown: int = 5) -> str:
    """The first few names, comma-separated, with a count of the rest."""
    rest = f", ... ({len(names) - shown} more)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + rest


def _plural(n: int, one: str, many: str = "") -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def load_folder(
    root: str | os.PathLike[str], size: int, limit: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, list[str]]:
    """Every image under root decoded, (N, size, size, 3) uint8, and the relative names of those kept.

    Images (scan_folder) come in sorted order of their names, at most `limit` distinct ones (the first).
    Byte-identical files are kept once, under the name with the fewest folders, then the shortest, then the
    first, so no image sits in two splits; images of more than max_pixels pixels are skipped before decoding.
    Each kind of entry left out is one warning line. Raises UserError for a bad limit, a missing root, or a
    root with no readable image.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise UserError(f"data.num_images: expected a positive integer or null, got {limit!r}")
    root = Path(root).expanduser()
    if not root.exists():
        raise UserError(f"data.root: folder '{root}' does not exist")
    if not root.is_dir():
        raise UserError(f"data.root: '{root}' is not a folder")
    listing = scan_folder(root)
    hidden, broken, linked, unentered = listing.skipped, listing.broken, listing.linked, listing.not_followed
    if not listing.images:
        where = f"; skipped as hidden or tool entries: {list_names(hidden)}" if hidden else ""
        links = f"; broken symbolic links: {list_names(broken)}" if broken else ""
        raise UserError(f"data.root: no images ({', '.join(IMAGE_SUFFIXES)}) under '{root}'{where}{links}")

    unreadable: dict[str, str] = {}  # name: why, in the order they failed
    names = {path: path.relative_to(root).as_posix() for path in listing.images}
    digests: dict[Path, bytes] = {}
    for path in listing.images:
        try:
            digests[path] = file_digest(path)
        except OSError as exc:
            unreadable[names[path]] = str(exc)
    # Each image under its most original-looking name (face.jpg before backup/face.jpg and "face (1).jpg"), so
    # a copy added later changes neither its name nor its split.
    canonical: dict[bytes, str] = {}
    for path in sorted(digests, key=lambda p: (names[p].count("/"), len(names[p]), names[p])):
        canonical.setdefault(digests[path], names[path])
    copies = [f"{names[p]} (= {canonical[d]})" for p, d in digests.items() if names[p] != canonical[d]]
    unique = [path for path, digest in digests.items() if names[path] == canonical[digest]]

    wanted = len(unique) if limit is None else min(limit, len(unique))
    pixels = np.empty((wanted, size, size, 3), dtype=np.uint8)
    kept: list[str] = []
    too_large: dict[str, str] = {}  # name: its size, in order of the names
    for path in unique:
        if len(kept) == wanted:
            break
        try:
            pixels[len(kept)] = load_image(path, size, max_pixels)
        except TooLargeImageError as exc:
            too_large[names[path]] = exc.pixels_text()
        except UnreadableImageError as exc:
            unreadable[names[path]] = str(exc)
        else:
            kept.append(names[path])

    first_reason = next(iter(unreadable.values()), "")
    large = list_names([f"{name} ({text})" for name, text in too_large.items()])
    over = f"over the limit of {max_pixels:,} pixels (data.max_pixels)"
    if not kept:
        failed = sorted([*unreadable, *too_large])
        reasons = "; ".join(([f"first error: {first_reason}"] if unreadable else [])
                            + ([f"{large} {over}"] if too_large else []))
        raise UserError(
            f"data.root: no readable image under '{root}': all {len(failed)} image files failed to decode "
            f"({list_names(failed)}); {reasons}"
        )
    through = sum(name in listing.via_link for name in kept)
    folders = f" ({_plural(len(linked), 'linked folder')}: {list_names(linked)})" if linked else ""
    for show, line in (
        (hidden, f"skipped {_plural(len(hidden), 'hidden or tool entry', 'hidden or tool entries')} under "
                 f"'{root}' (thumbnails, checkpoints, recycle bins: not read as faces): "
                 f"{list_names(hidden)}"),
        (through, f"read {through} of {len(kept)} images under '{root}' through symbolic links{folders}"),
        (unentered, f"did not enter {_plural(len(unentered), 'linked folder')} under '{root}' "
                    f"(each folder is read once): {list_names(unentered)}"),
        (broken, f"skipped {_plural(len(broken), 'broken symbolic link')} under '{root}' "
                 f"(nothing at the target): {list_names(broken)}"),
        (copies, f"dropped {_plural(len(copies), 'byte-identical copy', 'byte-identical copies')} "
                 f"under '{root}' (each image is read once): {list_names(copies)}"),
        (too_large, f"skipped {_plural(len(too_large), 'image')} {over} under '{root}', before decoding: "
                    f"{large}"),
        (unreadable, f"skipped {_plural(len(unreadable), 'unreadable image')} under '{root}': "
                     f"{list_names(sorted(unreadable))}; first error: {first_reason}"),
    ):
        if show:
            warnings.warn(line, stacklevel=2)
    # A copy frees the unused tail of the buffer.
    return (pixels if len(kept) == wanted else pixels[: len(kept)].copy()), kept
