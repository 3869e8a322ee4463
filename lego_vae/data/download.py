"""The `lego_faces` data source: download, verify and safely extract the public dataset zip."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from lego_vae.data.folder import hash_file, is_skipped, list_names
from lego_vae.errors import UserError

# The published set's URL and git blob id: data.url and data.blob of conf/data/lego_faces.yaml.
_COMPLETE_MARKER = ".complete"
_BLOB_ID = re.compile(r"[0-9a-f]{40}")
_DRIVE = re.compile(r"^[A-Za-z]:")

log = logging.getLogger(__name__)


def _one_line(exc: BaseException) -> str:
    """An exception's message squeezed onto one line (URLError's useful part is its .reason)."""
    reason = getattr(exc, "reason", None)
    return " ".join(str(exc if reason is None else reason).split()) or type(exc).__name__


def git_blob_sha1(path: str | os.PathLike[str]) -> str:
    """The git blob id of a file: sha1 of b"blob <size>\\0" + its bytes (streamed in chunks)."""
    return hash_file(path, hashlib.sha1(b"blob %d\0" % os.path.getsize(path))).hexdigest()


def download(url: str, dest: Path, expected_blob: str, timeout: float = 60) -> Path:
    """Download url to dest via a temporary name beside it, verify its blob id, then rename it into place."""
    dest = Path(dest)
    log.info("downloading %s", url)
    part: Path | None = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=timeout) as response:
            # A unique name in dest's folder: concurrent runs do not collide and os.replace stays atomic.
            fd, name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
            part = Path(name)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        if (actual := git_blob_sha1(part)) != expected_blob.lower():
            raise UserError(
                f"lego_faces: checksum mismatch for {url}: expected git blob {expected_blob}, "
                f"got {actual}; the partial download was deleted"
            )
        os.replace(part, dest)
        part = None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        # ValueError is what urlopen raises for a malformed URL such as a bare path.
        raise UserError(
            f"lego_faces: cannot download {url} to '{dest}': {_one_line(exc)}; "
            "expected a reachable URL and a writable cache folder"
        ) from exc
    finally:  # also on Ctrl-C: an interrupted or refused download never lingers as a .part file
        if part is not None:
            part.unlink(missing_ok=True)
    return dest


def _target_of(info: zipfile.ZipInfo) -> PurePosixPath | str:
    """The entry's path inside the target ('.' and inner '..' resolved), or why it could land outside it."""
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link"
    name = info.filename.replace("\\", "/")  # Windows-made zips may use backslashes
    if name.startswith("/") or _DRIVE.match(name):
        return "absolute path"
    parts: list[str] = []
    for part in PurePosixPath(name).parts:
        if part != "..":
            parts.append(part)
        elif not parts:
            return "path escapes the target folder"
        else:
            parts.pop()
    return PurePosixPath(*parts)


def safe_extract(zip_path: Path, target: Path) -> list[Path]:
    """Extract a zip into target, refusing entries that could land outside it (absolute, '..', symlinks)."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            entries = [(info, _target_of(info)) for info in archive.infolist()]
            # Every entry is checked before any is written, so a hostile zip leaves nothing behind.
            unsafe = [f"{info.filename} ({rel})" for info, rel in entries if isinstance(rel, str)]
            if unsafe:
                raise UserError(
                    f"lego_faces: refusing to extract '{zip_path}': {len(unsafe)} unsafe entries: "
                    f"{list_names(unsafe)}; expected only regular files at relative paths inside the archive"
                )
            Path(target).mkdir(parents=True, exist_ok=True)
            root = Path(target).resolve()
            written: list[Path] = []
            for info, rel in entries:
                # What the folder source would skip (hidden files, __MACOSX, NAS thumbnails) holds no faces.
                if info.is_dir() or not rel.parts or any(is_skipped(part) for part in rel.parts):
                    continue
                dest = root.joinpath(*rel.parts)
                # Guards against symlinks already inside target, which a lexical check cannot see.
                if dest.is_symlink() or not dest.parent.resolve().is_relative_to(root):
                    raise UserError(
                        f"lego_faces: refusing to extract '{zip_path}': entry {info.filename} "
                        f"would land outside '{target}'"
                    )
                dest.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                written.append(dest)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, RuntimeError, NotImplementedError) as exc:
        # RuntimeError/NotImplementedError: encrypted entries or unsupported compression.
        raise UserError(f"lego_faces: cannot extract '{zip_path}': {_one_line(exc)}") from exc
    return written


def fetch_lego_faces(url: str, expected_blob: str, cache_dir: Path) -> Path:
    """Return a folder of extracted images under cache_dir, downloading and verifying the zip on first use."""
    blob = expected_blob.strip().lower()
    # The id becomes a folder name, so anything but 40 hex digits could point elsewhere on disk.
    if not _BLOB_ID.fullmatch(blob):
        raise UserError(f"lego_faces: expected git blob id must be 40 hex digits, got {expected_blob!r}")
    base = Path(cache_dir).expanduser() / "lego_faces" / blob
    images = base / "images"
    if (images / _COMPLETE_MARKER).is_file():
        return images

    zip_path = base / "dataset.zip"
    try:
        base.mkdir(parents=True, exist_ok=True)
        reusable = zip_path.is_file() and git_blob_sha1(zip_path) == blob
    except OSError as exc:
        raise UserError(f"lego_faces: cannot use the cache folder '{base}': {_one_line(exc)}") from exc
    if reusable:
        log.info("reusing verified %s", zip_path)
    else:
        if zip_path.exists():
            log.warning("cached %s does not match git blob %s; downloading it again", zip_path, blob)
        download(url, zip_path, blob)

    # Extracted beside images/ and renamed, with its marker: a killed run leaves only a *.tmp folder, never a
    # half-filled images/ that a later run would trust.
    try:
        staging = Path(tempfile.mkdtemp(dir=base, prefix="images.", suffix=".tmp"))
        try:
            safe_extract(zip_path, staging)
            (staging / _COMPLETE_MARKER).touch()
            if images.exists():  # left without its marker by an interrupted older layout or by hand
                shutil.rmtree(images)
            try:
                os.replace(staging, images)
            except OSError:
                if not (images / _COMPLETE_MARKER).is_file():  # else another run finished first
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        raise UserError(f"lego_faces: cannot write the cache folder '{base}': {_one_line(exc)}") from exc
    return images
