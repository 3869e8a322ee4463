"""A relative path in a config means the folder where the command was typed, whatever Hydra's working directory is.

With `hydra.job.chdir=true` Hydra runs a command inside its run folder; a relative data.root, data.cache_dir or
checkpoint= would then be looked for there (hydra-ecosystem/hydra#922). So every path a config holds (the schema's
`path()` fields, lego_vae.config.fields) is made absolute once, where the config is validated, against the
folder Hydra started in (hydra.utils.to_absolute_path: HydraConfig's runtime.cwd inside a Hydra app, else this
process's working directory); the rest of the code only sees absolute paths.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from typing import Any

from hydra.utils import to_absolute_path

# A SQLAlchemy sqlite URL of a file: sqlite:///relative.db or sqlite:////absolute.db (a dialect's driver may follow
# the +), with a query string after the path.
SQLITE_FILE = re.compile(r"^(sqlite(?:\+\w+)?:///)([^?]+)(\?.*)?$")


def typed_path(value: str) -> str:
    """value as an absolute path: ~ expanded, a relative path joined to the folder where the command was typed."""
    return to_absolute_path(os.path.expanduser(value))


def typed_folder() -> str:
    """The folder where the command was typed: HydraConfig's runtime.cwd inside a Hydra app, else the working
    directory (as hydra.utils.to_absolute_path reads it)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.cwd if HydraConfig.initialized() else os.getcwd()


def shown_path(path: str | os.PathLike) -> str:
    """path as a user reads it in a line: relative to the folder where the command was typed when it lies inside
    it (as they typed it, usually), else absolute."""
    full = os.path.abspath(path)
    folder = typed_folder()
    inside = os.path.commonpath([full, folder]) == folder
    return os.path.relpath(full, folder) if inside else full


def typed_url(url: str) -> str:
    """A database URL whose sqlite file is relative, with that file made absolute (typed_path); others unchanged.

    sqlite:///study.db -> sqlite:////home/me/study.db; an in-memory (sqlite://, :memory:) or file: URI database,
    or any other database, is returned as it is.
    """
    m = SQLITE_FILE.match(url)
    if m is None or m[2].startswith(("/", ":memory:", "file:")):
        return url
    return f"{m[1]}{typed_path(m[2])}{m[3] or ''}"


def absolute(value: Any, meta: dict) -> Any:
    """A path field's value made absolute (typed_path, or typed_url for a URL field); other values unchanged."""
    kind = meta.get("path")
    if kind is None or not isinstance(value, str) or not value or value in meta.get("words", ()):
        return value
    return typed_url(value) if kind == "url" else typed_path(value)


def absolute_paths(section: dict, schema: type) -> dict:
    """Make every path field of schema that section holds absolute, in place (sections nested as in the schema);
    keys the section lacks, and keys the schema does not know, are left alone. Returns section."""
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        if f.name not in section:
            continue
        if dataclasses.is_dataclass(hints[f.name]):
            if isinstance(section[f.name], dict):
                absolute_paths(section[f.name], hints[f.name])
        else:
            section[f.name] = absolute(section[f.name], dict(f.metadata))
    return section
