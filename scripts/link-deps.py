"""Link a distribution's runtime dependencies from this environment into a folder (for check-install.sh).

Usage: python scripts/link-deps.py DIST DEST

Walks the requirements of DIST (no extras) through every installed distribution's metadata, markers evaluated
for this interpreter, and symlinks the top-level entries each of them installed (packages, modules and their
.dist-info) into DEST. A `.pth` line naming DEST then makes a fresh virtual environment see exactly those
packages, without a second multi-GB copy of torch: a dependency the project imports but does not declare is
missing there, as in a real fresh install. Exits 1 with one line when a requirement is not installed.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def closure(name: str) -> list[metadata.Distribution]:
    """The distributions ``name`` needs at run time, itself excluded, each once.

    Raises:
        SystemExit: a requirement (of ``name`` or of a dependency) is not installed.
    """
    installed = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions()}
    seen: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, tuple[str, ...]]] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [(canonicalize_name(name), ())]
    while todo:
        key, extras = todo.pop()
        if (key, extras) in done:
            continue
        done.add((key, extras))
        dist = installed.get(key)
        if dist is None:
            raise SystemExit(f"error: {key} is required but not installed in {sys.prefix}")
        seen[key] = dist
        for line in dist.requires or []:
            req = Requirement(line)
            envs = [{"extra": e} for e in ("", *extras)]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((canonicalize_name(req.name), tuple(sorted(req.extras))))
    seen.pop(canonicalize_name(name))
    return list(seen.values())


def top_level(dist: metadata.Distribution) -> set[str]:
    """The entries ``dist`` installed directly under site-packages (scripts in bin/ and caches left out)."""
    names = set()
    for file in dist.files or []:
        first = file.parts[0]
        if first not in ("..", "__pycache__"):
            names.add(first)
    return names


def main(argv: list[str]) -> None:
    """Link the closure of ``argv[0]`` into the folder ``argv[1]`` (created if absent)."""
    name, dest = argv[0], Path(argv[1])
    dest.mkdir(parents=True, exist_ok=True)
    for dist in closure(name):
        root = Path(dist.locate_file(""))
        for entry in top_level(dist):
            link = dest / entry
            if not link.exists() and (root / entry).exists():
                link.symlink_to(root / entry)


if __name__ == "__main__":
    main(sys.argv[1:])
