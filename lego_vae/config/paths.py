"""A relative path in a config means the folder where the command was typed, whatever Hydra's working directory is.

With `hydra.job.chdir=true` Hydra runs a command inside its run folder, where a relative data.root or
checkpoint= would be looked for (hydra-ecosystem/hydra#922). So every path a config holds (the schema's
`path()` fields) is made absolute once, where the config is validated, against the folder Hydra started in
(hydra.utils.to_absolute_path); the rest of the code only sees absolute paths.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.utils import to_absolute_path

# A SQLAlchemy sqlite URL of a file: sqlite:///relative.db or sqlite:////absolute.db (a dialect's driver may follow
# the +), with a query string after the path.
SQLITE_FILE = re.compile(r"^(sqlite(?:\+\w+)?:///)([^?]+)(\?.*)?$")


def typed_path(value: str) -> str:
    """value as an absolute path: ~ expanded, a relative path joined to the folder where the command was typed."""
    return to_absolute_path(os.path.expanduser(value))


def shown_path(path: str | os.PathLike) -> str:
    """path as a user reads it in a line: relative to the folder where the command was typed (HydraConfig's
    runtime.cwd, else the working directory) when it lies inside it, else absolute."""
    full = os.path.abspath(path)
    folder = HydraConfig.get().runtime.cwd if HydraConfig.initialized() else os.getcwd()
    return os.path.relpath(full, folder) if os.path.commonpath([full, folder]) == folder else full


def typed_url(url: str) -> str:
    """A database URL whose sqlite file is relative (sqlite:///study.db), with that file made absolute
    (typed_path); an in-memory (sqlite://, :memory:) or file: URI database, or any other, as it is."""
    m = SQLITE_FILE.match(url)
    if m is None or m[2].startswith(("/", ":memory:", "file:")):
        return url
    return f"{m[1]}{typed_path(m[2])}{m[3] or ''}"


def absolute_paths(config: Any) -> Any:
    """Make every path field of a typed config absolute (typed_path, or typed_url for a URL field), in place,
    sections nested; null, "" and a field's words (ckpt_path=last) stay. Returns config."""
    for f in dataclasses.fields(config):
        value, kind = getattr(config, f.name), f.metadata.get("path")
        if dataclasses.is_dataclass(value):
            absolute_paths(value)
        elif kind is not None and isinstance(value, str) and value and value not in f.metadata["words"]:
            setattr(config, f.name, typed_url(value) if kind == "url" else typed_path(value))
    return config
