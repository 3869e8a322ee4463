"""Writing the files a run keeps whole or not at all, and one line for a write the disk refused.

Every file that matters (checkpoints, metrics.json, config.yaml, caches, pictures) is written under a
temporary name beside its target, flushed to the disk, then renamed over it with os.replace, atomic on one
file system: a full disk, a read-only folder or a kill leaves the old file whole and no temporary file behind.
Not in /tmp: across file systems "rename" is a copy that truncates first (Lightning-AI/pytorch-lightning#688).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

# The errors of a write that the user's disk or folder refused, with what to do about each.
STORAGE_ERRORS = {
    errno.ENOSPC: ("no space left on device", "free space there or choose another folder"),
    errno.EDQUOT: ("disk quota exceeded", "free space there or choose another folder"),
    errno.EFBIG: ("file too large for this file system or process limit", "choose another folder"),
    errno.EROFS: ("read-only file system", "choose a writable folder"),
    errno.EACCES: ("permission denied", "choose a folder you may write to"),
    errno.EPERM: ("operation not permitted", "choose a folder you may write to"),
    # A file where a folder is needed (mkdir of it, or a path through it), or a folder where a file is to be written.
    errno.EEXIST: ("a file stands where a folder is needed", "move that file or choose another folder"),
    errno.ENOTDIR: ("a file stands where a folder is needed", "move that file or choose another folder"),
    errno.EISDIR: ("a folder stands where a file is to be written", "move that folder or choose another path"),
}


def is_storage_error(err: BaseException) -> bool:
    """Whether err is an OSError of a refused write: a full disk or quota, a read-only or forbidden folder, a file
    where a folder is needed (or a folder where a file is)."""
    return isinstance(err, OSError) and err.errno in STORAGE_ERRORS


def human_bytes(n: float) -> str:
    """A byte count in the largest unit that keeps it >= 1: '0 B', '512 B', '3.2 MB', '1.5 GB'."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def free_space(path: str | Path) -> str:
    """The free space of the file system that holds path (or its nearest existing parent), e.g. '3.2 MB';
    'unknown' where it cannot be measured."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return human_bytes(shutil.disk_usage(path).free)
    except OSError:
        return "unknown"


def storage_message(err: OSError, path: str | Path | None = None) -> str:
    """One line for a refused write: the file, why, the folder with its free space, and the way out.

    path: the file or folder being written (default: err.filename2, a rename's target, else err.filename, else the
    current folder).
    """
    target = Path(path if path is not None else (err.filename2 or err.filename or Path.cwd()))
    reason, advice = STORAGE_ERRORS.get(err.errno, (err.strerror or str(err), "choose another folder"))
    if target.is_dir():
        return f"cannot write in {target}: {reason} ({free_space(target)} free there); {advice}"
    return f"cannot write {target}: {reason} ({free_space(target.parent)} free in {target.parent}); {advice}"


@contextlib.contextmanager
def replacing(path: str | Path, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside path to write; on success it is synced and renamed over path.

    On any failure the temporary file is removed and path is left as it was; an OSError naming no file or the
    temporary one is raised again naming path. keep_suffix: the temporary name ends in path's suffix too (for
    writers that choose the format by it: PNG, GIF), else in '.tmp', so that a '*.ckpt' glob never lists it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
                         + (path.suffix if keep_suffix else ""))
    try:
        yield tmp
        with open(tmp, "rb") as f:  # on the disk before the rename: a crash never leaves an empty file
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.filename in (None, str(tmp)):  # name the file a user knows
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write data to path whole or not at all (see replacing); returns path."""
    with replacing(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write text (UTF-8) to path whole or not at all (see replacing); returns path."""
    return write_bytes(path, text.encode("utf-8"))


class _WholeWrites:
    """A file for torch.save whose write() writes all it is given or raises, and keeps the OSError that stopped it.

    torch's own file writer reports a refused write as a RuntimeError that says nothing of the disk (and so does
    its zip writer's cleanup, over the OSError of a file object); os.write, looped, keeps the errno.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):
                done += os.write(self.fd, view[done:])
        except OSError as err:
            self.error = self.error or err
            raise
        return done

    def flush(self) -> None:
        pass


def save_torch(obj: Any, path: str | Path) -> Path:
    """torch.save(obj) to path whole or not at all (see replacing); returns path. A refused write is an OSError
    with its errno, naming path."""
    with replacing(path) as tmp, open(tmp, "wb", buffering=0) as f:
        writer = _WholeWrites(f.fileno())
        try:
            torch.save(obj, writer)
        except Exception:
            if writer.error is not None:  # the disk's refusal, not torch's RuntimeError over it
                raise writer.error from None
            raise
    return Path(path)
