"""Typed config fields that carry their own allowed range, and the one-line message for a value outside it.

A schema field is a dataclass field made by one of the constructors below. Its type is what OmegaConf checks when
a config is merged into the schema; its metadata is the range check beside it. Defaults live in the YAML files of
lego_vae/conf, never here: every field's default is MISSING.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from typing import Any

from lego_vae.errors import UserError

KIND = "kind"  # metadata key: int | number | choice | flag | text | ints | any


def _field(kind: str, **meta: Any) -> Any:
    return dataclasses.field(default=dataclasses.MISSING, metadata={KIND: kind, **meta})


def integer(low: int | None = None, high: int | None = None, *, optional: bool = False) -> Any:
    """An int field in [low, high] (either bound may be absent); optional: null allowed."""
    return _field("int", low=low, high=high, optional=optional)


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False, high_open: bool = False,
           optional: bool = False, note: str = "") -> Any:
    """A finite float field between low and high, each bound open or closed; optional: null allowed."""
    return _field("number", low=low, high=high, low_open=low_open, high_open=high_open, optional=optional, note=note)


def choice(options: tuple[str, ...], *, as_text: bool = False) -> Any:
    """A field whose value is one of options (as_text: compared as its string, e.g. precision 32 or "32")."""
    return _field("choice", options=options, as_text=as_text)


def flag() -> Any:
    """A true/false field."""
    return _field("flag")


def text(*, optional: bool = False, nonempty: bool = False) -> Any:
    """A string field (a path, a name, a URL); optional: null allowed; nonempty: "" refused."""
    return _field("text", optional=optional, nonempty=nonempty)


def path(*, optional: bool = False, nonempty: bool = False, words: tuple[str, ...] = (), url: bool = False) -> Any:
    """A text field that names a file or folder, made absolute against the folder where the command was typed
    (lego_vae.config.paths). words: values that are not paths (ckpt_path's "last"); url: a database URL, of which
    only a relative sqlite file is made absolute."""
    return _field("text", optional=optional, nonempty=nonempty, path="url" if url else "file", words=words)


def integers(low: int) -> Any:
    """A non-empty list of ints >= low."""
    return _field("ints", low=low)


def anything(allowed: str = "") -> Any:
    """A field of several types (e.g. "auto" or an int) whose check lives in its class's check()."""
    return _field("any", allowed=allowed)


def is_int(value: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


def schema_field(schema: type, key: str) -> dataclasses.Field | None:
    """The schema's field at a dotted key ("data.root"; a section's own field has no metadata), or None."""
    cls: Any = schema
    for part in key.split("."):
        if not dataclasses.is_dataclass(cls):
            return None
        found = {f.name: f for f in dataclasses.fields(cls)}.get(part)
        if found is None:
            return None
        cls = typing.get_type_hints(cls)[part]
    return found


def _bound(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def allowed(meta: Mapping) -> str:
    """What a field accepts, as the end of "key=value: must be ...": "an integer >= 1", "one of a, b", ..."""
    kind = meta.get(KIND)
    if kind in ("int", "number"):
        text_ = "an integer" if kind == "int" else "a number"
        low, high = meta["low"], meta["high"]
        if low is not None and high is not None:
            text_ += (f" in {'(' if meta.get('low_open') else '['}{_bound(low)}, "
                      f"{_bound(high)}{')' if meta.get('high_open') else ']'}")
        elif low is not None:
            text_ += f" {'>' if meta.get('low_open') else '>='} {_bound(low)}"
        if meta.get("note"):
            text_ += f" ({meta['note']})"
        return text_ + (" or null" if meta["optional"] else "")
    if kind == "choice":
        return f"one of {', '.join(meta['options'])}"
    if kind == "flag":
        return "true or false"
    if kind == "text":
        return "a string" + (" or null" if meta["optional"] else "")
    if kind == "ints":
        return f"a non-empty list of integers >= {meta['low']}"
    return meta.get("allowed") or "a valid value"


def refuse(key: str, value: Any, meta: Mapping) -> UserError:
    """The one-line error for key=value outside what meta allows. A float reads as briefly as it round-trips: the
    schema made a typed `0` 0.0 while composing, and the line quotes it as typed (`=0`)."""
    if isinstance(value, float) and float(f"{value:g}") == value:
        value = f"{value:g}"
    return UserError(f"{key}={value}: must be {allowed(meta)}")


def fits(value: Any, meta: Mapping) -> bool:
    """Whether value is inside the field's range (meta: the field's metadata)."""
    kind = meta.get(KIND)
    if value is None:
        return bool(meta.get("optional")) or kind == "any"
    if kind in ("int", "number"):
        low, high = meta["low"], meta["high"]
        return (is_int(value) if kind == "int" else is_number(value)) \
            and (low is None or (value > low if meta.get("low_open") else value >= low)) \
            and (high is None or (value < high if meta.get("high_open") else value <= high))
    if kind == "choice":
        return (str(value) if meta["as_text"] else value) in meta["options"]
    if kind == "flag":
        return isinstance(value, bool)
    if kind == "text":
        return isinstance(value, str) and (bool(value) or not meta["nonempty"])
    if kind == "ints":
        return isinstance(value, list) and bool(value) and all(is_int(v) and v >= meta["low"] for v in value)
    return True
