"""The `lego_faces` data source: download, verify and safely extract the public dataset zip."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from lego_vae.data.folder import is_skipped
from lego_vae.errors import UserError

# The published set's URL and git blob id are data.url and data.blob of conf/data/lego_faces.yaml, its one place.
_CHUNK_BYTES = 1 << 20
_COMPLETE_MARKER = ".complete"
_MAX_NAMES_SHOWN = 5
_S_IFMT = 0o170000
_S_IFLNK = 0o120000
_BLOB_ID = re.compile(r"[0-9a-f]{40}")
_DRIVE = re.compile(r"^[A-Za-z]:")

log = logging.getLogger(__name__)


def _one_line(exc: BaseException) -> str:
    """An exception's message squeezed onto one line, for UserError messages."""
    reason = getattr(exc, "reason", None)  # URLError wraps the useful part in .reason
    text = str(reason if reason is not None else exc)
    return " ".join(text.split()) or type(exc).__name__


def git_blob_sha1(path: str | os.PathLike[str]) -> str:
    """The git blob id of a file: sha1 of b"blob <size>\\0" + its bytes (streamed in chunks)."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        digest = hashlib.sha1(b"blob %d\0" % size)
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def download(url: str, dest: Path, expected_blob: str, timeout: float = 60) -> Path:
    """Download url to dest via a temporary name in the same folder, verify its blob id, then rename into place."""
    dest = Path(dest)
    log.info("downloading %s", url)
    part: Path | None = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=timeout) as response:
            # A unique name in dest's folder: concurrent runs do not collide and os.replace stays atomic.
            fd, part_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
            part = Path(part_name)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(response, out, _CHUNK_BYTES)
        actual = git_blob_sha1(part)
        if actual != expected_blob.lower():
            part.unlink()
            part = None
            raise UserError(
                f"lego_faces: checksum mismatch for {url}: expected git blob {expected_blob}, got {actual}; "
                "the partial download was deleted"
            )
        os.replace(part, dest)
        part = None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        # ValueError is what urlopen raises for a malformed URL such as a bare path.
        raise UserError(
            f"lego_faces: cannot download {url} to '{dest}': {_one_line(exc)}; "
            "expected a reachable URL and a writable cache folder"
        ) from exc
    finally:
        # Also runs on Ctrl-C, so an interrupted download never lingers as a .part file.
        if part is not None:
            part.unlink(missing_ok=True)
    return dest


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    """Why extracting this entry could write outside the target folder, or None if it cannot."""
    if (info.external_attr >> 16) & _S_IFMT == _S_IFLNK:
        return "symbolic link"
    # Windows-made zips may use backslashes, which would be separators on extraction there.
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or _DRIVE.match(name):
        return "absolute path"
    depth = 0
    for part in PurePosixPath(name).parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return "path escapes the target folder"
        elif part not in ("", "."):
            depth += 1
    return None


def _relative_name(info: zipfile.ZipInfo) -> PurePosixPath:
    """The entry's path inside the target, with '.' and inner '..' already resolved."""
    parts: list[str] = []
    for part in PurePosixPath(info.filename.replace("\\", "/")).parts:
        if part == "..":
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return PurePosixPath(*parts)


def _is_junk(rel: PurePosixPath) -> bool:
    """An entry the folder source would skip (folder.is_skipped on any part): hidden files and folders
    (AppleDouble "._*" files, .ipynb_checkpoints, ...), macOS resource forks (__MACOSX), thumbnail and
    recycle-bin folders of NAS boxes and Windows. They hold no faces, so they are not extracted."""
    return any(is_skipped(part) for part in rel.parts)


def safe_extract(zip_path: Path, target: Path) -> list[Path]:
    """Extract a zip into target, refusing entries that would land outside it (absolute paths, '..', symlinks)."""
    zip_path = Path(zip_path)
    target = Path(target)
    try:
        with zipfile.ZipFile(zip_path) as archive:
            entries = archive.infolist()
            # Every entry is checked before any is written, so a hostile zip leaves nothing behind.
            unsafe = [f"{info.filename} ({reason})" for info in entries if (reason := _unsafe_reason(info))]
            if unsafe:
                shown = ", ".join(unsafe[:_MAX_NAMES_SHOWN])
                more = (
                    f", ... ({len(unsafe) - _MAX_NAMES_SHOWN} more)" if len(unsafe) > _MAX_NAMES_SHOWN else ""
                )
                raise UserError(
                    f"lego_faces: refusing to extract '{zip_path}': {len(unsafe)} unsafe entries: {shown}{more}; "
                    "expected only regular files at relative paths inside the archive"
                )
            target.mkdir(parents=True, exist_ok=True)
            root = target.resolve()
            written: list[Path] = []
            for info in entries:
                rel = _relative_name(info)
                if info.is_dir() or not rel.parts or _is_junk(rel):
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
                    shutil.copyfileobj(src, out, _CHUNK_BYTES)
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

    try:
        _extract_once(zip_path, images)
    except OSError as exc:
        raise UserError(f"lego_faces: cannot write the cache folder '{base}': {_one_line(exc)}") from exc
    return images


def _extract_once(zip_path: Path, images: Path) -> None:
    """Extract zip_path into images/ so that images/ only ever appears complete, with its marker."""
    # Extract beside the final folder and rename: a killed run leaves only a *.tmp folder, never a
    # half-filled images/ that a later run would trust.
    staging = Path(tempfile.mkdtemp(dir=images.parent, prefix=images.name + ".", suffix=".tmp"))
    try:
        safe_extract(zip_path, staging)
        (staging / _COMPLETE_MARKER).touch()
        if images.exists():
            # Left by an interrupted older layout or by hand: it has no marker, so it is not trusted.
            shutil.rmtree(images)
        try:
            os.replace(staging, images)
        except OSError:
            # Another run finished first; its folder is complete, so ours is redundant.
            if not (images / _COMPLETE_MARKER).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
