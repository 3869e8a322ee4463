"""Typed config fields that carry their own allowed range, and the one-line message for a value outside it.

A schema field is a dataclass field made by one of the constructors below. Its type is what OmegaConf checks
when a config is merged into the schema; its metadata is the range check beside it. Defaults live in the YAML
files of lego_vae/conf, never here: every field's default is MISSING.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Mapping
from typing import Any

from lego_vae.errors import UserError

KIND = "kind"  # metadata key: int | number | choice | flag | text | ints | any


def _field(kind: str, allowed: str, ok: Callable[[Any], bool], *, optional: bool = False, **meta: Any) -> Any:
    """A field without a default; its metadata: its kind, what it allows (the end of "must be ..."), and ok,
    the check of a value that is not null."""
    allowed += " or null" if optional else ""
    meta.update({KIND: kind, "allowed": allowed, "ok": ok, "optional": optional})
    return dataclasses.field(default=dataclasses.MISSING, metadata=meta)


def _span(noun: str, low: float | None, high: float | None, low_open: bool = False,
          high_open: bool = False) -> str:
    """What a range allows: "an integer in [1, 10]", "a number > 0", ..."""
    if low is not None and high is not None:
        return f"{noun} in {'(' if low_open else '['}{_bound(low)}, {_bound(high)}{')' if high_open else ']'}"
    return f"{noun} {'>' if low_open else '>='} {_bound(low)}" if low is not None else noun


def _bound(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _within(value: float, low: float | None, high: float | None, low_open: bool = False,
            high_open: bool = False) -> bool:
    return (low is None or (value > low if low_open else value >= low)) \
        and (high is None or (value < high if high_open else value <= high))


def integer(low: int | None = None, high: int | None = None, *, optional: bool = False) -> Any:
    """An int field in [low, high] (either bound may be absent); optional: null allowed."""
    return _field("int", _span("an integer", low, high), lambda v: is_int(v) and _within(v, low, high),
                  optional=optional)


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False, optional: bool = False, note: str = "") -> Any:
    """A finite float field between low and high, each bound open or closed; optional: null allowed."""
    allowed = _span("a number", low, high, low_open, high_open) + (f" ({note})" if note else "")
    return _field("number", allowed, lambda v: is_number(v) and _within(v, low, high, low_open, high_open),
                  optional=optional)


def choice(options: tuple[str, ...], *, as_text: bool = False) -> Any:
    """A field whose value is one of options (as_text: compared as its string, e.g. precision 32 or "32")."""
    return _field("choice", f"one of {', '.join(options)}", lambda v: (str(v) if as_text else v) in options)


def flag() -> Any:
    """A true/false field."""
    return _field("flag", "true or false", lambda v: isinstance(v, bool))


def text(*, optional: bool = False, nonempty: bool = False, **meta: Any) -> Any:
    """A string field (a path, a name, a URL); optional: null allowed; nonempty: "" refused."""
    return _field("text", "a string", lambda v: isinstance(v, str) and (bool(v) or not nonempty),
                  optional=optional, **meta)


def path(*, optional: bool = False, nonempty: bool = False, words: tuple[str, ...] = (),
         url: bool = False) -> Any:
    """A text field that names a file or folder, made absolute against the folder where the command was typed
    (lego_vae.config.paths). words: values that are not paths (ckpt_path's "last"); url: a database URL, of
    which only a relative sqlite file is made absolute."""
    return text(optional=optional, nonempty=nonempty, path="url" if url else "file", words=words)


def integers(low: int) -> Any:
    """A non-empty list of ints >= low."""
    return _field("ints", f"a non-empty list of integers >= {low}",
                  lambda v: isinstance(v, list) and bool(v) and all(is_int(x) and x >= low for x in v))


def anything(allowed: str = "") -> Any:
    """A field of several types (e.g. "auto" or an int), null allowed, whose check is its class's check()."""
    return _field("any", allowed or "a valid value", lambda v: True)


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


def refuse(key: str, value: Any, meta: Mapping) -> UserError:
    """The one-line error for key=value outside what meta (a field's metadata) allows. A float reads as
    briefly as it round-trips: the schema made a typed `0` 0.0, and the line quotes it as typed (`=0`)."""
    if isinstance(value, float) and float(f"{value:g}") == value:
        value = f"{value:g}"
    return UserError(f"{key}={value}: must be {meta.get('allowed') or 'a valid value'}")


def fits(value: Any, meta: Mapping) -> bool:
    """Whether value is in the range of the field whose metadata is meta (a section's field: any value)."""
    if value is None:
        return bool(meta.get("optional")) or meta.get(KIND) == "any"
    return "ok" not in meta or meta["ok"](value)
