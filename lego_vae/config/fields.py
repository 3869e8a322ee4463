"""Typed config fields that carry their own allowed range, and the one-line message for a value outside it.

A schema field is a dataclass field made by one of the constructors below (integer, number, choice,
flag, text, anything). Its type is what OmegaConf checks when a config is merged into the schema;
its metadata is the range check that stays beside it. Defaults live in the YAML files of
lego_vae/conf, never here: every field's default is MISSING.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, Field, field
from typing import Any

from lego_vae.errors import UserError

KIND = "kind"  # metadata key: int | number | choice | flag | text | ints | any


def integer(low: int | None = None, high: int | None = None, *, optional: bool = False) -> Any:
    """An int field in [low, high] (either bound may be absent); optional: null allowed."""
    return field(default=MISSING, metadata={KIND: "int", "low": low, "high": high, "optional": optional})


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False, high_open: bool = False,
           optional: bool = False, note: str = "") -> Any:
    """A finite float field between low and high, each bound open or closed; optional: null allowed."""
    return field(default=MISSING, metadata={KIND: "number", "low": low, "high": high, "low_open": low_open,
                                            "high_open": high_open, "optional": optional, "note": note})


def choice(options: tuple[str, ...], *, as_text: bool = False) -> Any:
    """A field whose value is one of options (as_text: compared as its string, e.g. precision 32 or "32")."""
    return field(default=MISSING, metadata={KIND: "choice", "options": options, "as_text": as_text})


def flag() -> Any:
    """A true/false field."""
    return field(default=MISSING, metadata={KIND: "flag"})


def text(*, optional: bool = False, nonempty: bool = False) -> Any:
    """A string field (a path, a name, a URL); optional: null allowed; nonempty: "" refused."""
    return field(default=MISSING, metadata={KIND: "text", "optional": optional, "nonempty": nonempty})


def path(*, optional: bool = False, nonempty: bool = False, words: tuple[str, ...] = (), url: bool = False) -> Any:
    """A text field that names a file or folder: a relative one means the folder where the command was typed
    (lego_vae.config.paths), whatever Hydra's working directory is. words: values that are not paths (ckpt_path's
    "last"); url: a database URL, of which only a relative sqlite file is made absolute."""
    return field(default=MISSING, metadata={KIND: "text", "optional": optional, "nonempty": nonempty,
                                            "path": "url" if url else "file", "words": words})


def integers(low: int) -> Any:
    """A non-empty list of ints >= low."""
    return field(default=MISSING, metadata={KIND: "ints", "low": low})


def anything(allowed: str = "") -> Any:
    """A field of several types (e.g. "auto" or an int) whose check lives in its class's check()."""
    return field(default=MISSING, metadata={KIND: "any", "allowed": allowed})


def is_int(value: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _bound(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def allowed(meta: dict) -> str:
    """What a field accepts, as the end of "key=value: must be ...": "an integer >= 1", "one of a, b", ..."""
    kind = meta.get(KIND)
    if kind in ("int", "number"):
        noun = "an integer" if kind == "int" else "a number"
        low, high = meta.get("low"), meta.get("high")
        if kind == "int" and low is not None and high is not None:
            text_ = f"{noun} in [{low}, {high}]"
        elif low is not None and high is not None:
            text_ = (f"{noun} in {'(' if meta['low_open'] else '['}{_bound(low)}, "
                     f"{_bound(high)}{')' if meta['high_open'] else ']'}")
        elif low is not None:
            text_ = f"{noun} {'>' if meta.get('low_open') else '>='} {_bound(low)}"
        else:
            text_ = noun
        if meta.get("note"):
            text_ += f" ({meta['note']})"
        return text_ + (" or null" if meta.get("optional") else "")
    if kind == "choice":
        return f"one of {', '.join(meta['options'])}"
    if kind == "flag":
        return "true or false"
    if kind == "text":
        return "a string" + (" or null" if meta.get("optional") else "")
    if kind == "ints":
        return f"a non-empty list of integers >= {meta['low']}"
    return meta.get("allowed") or "a valid value"


def refuse(key: str, value: Any, meta: dict) -> UserError:
    """The one-line error for key=value outside what meta allows. A float reads as briefly as it round-trips: the
    schema made a typed `0` 0.0 while composing, and the line quotes it as typed (`=0`)."""
    if isinstance(value, float) and float(f"{value:g}") == value:
        value = f"{value:g}"
    return UserError(f"{key}={value}: must be {allowed(meta)}")


def check_value(key: str, value: Any, meta: dict) -> None:
    """Raise UserError (one line, naming key, value and what is allowed) if value is outside the field's range."""
    kind = meta.get(KIND)
    if value is None:
        if meta.get("optional") or kind == "any":
            return
        raise refuse(key, value, meta)
    if kind == "int":
        ok = is_int(value) and (meta["low"] is None or value >= meta["low"]) \
            and (meta["high"] is None or value <= meta["high"])
    elif kind == "number":
        low, high = meta["low"], meta["high"]
        ok = is_number(value) \
            and (low is None or (value > low if meta["low_open"] else value >= low)) \
            and (high is None or (value < high if meta["high_open"] else value <= high))
    elif kind == "choice":
        ok = (str(value) if meta["as_text"] else value) in meta["options"]
    elif kind == "flag":
        ok = isinstance(value, bool)
    elif kind == "text":
        ok = isinstance(value, str) and (bool(value) or not meta["nonempty"])
    elif kind == "ints":
        ok = isinstance(value, list) and bool(value) and all(is_int(v) and v >= meta["low"] for v in value)
    else:
        ok = True
    if not ok:
        raise refuse(key, value, meta)


def field_meta(f: Field) -> dict:
    """The metadata of a schema field, as a plain dict."""
    return dict(f.metadata)
