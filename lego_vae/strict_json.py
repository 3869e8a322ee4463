"""Strict JSON for every file the project writes: no bare NaN or Infinity, which JSON.parse, jq and most other
parsers refuse (Python's json writes them by default). A non-finite float, anywhere in the data, is written as
null, with a `<key>_reason` beside its top-level key saying which value was not finite.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lego_vae.files import write_text


def _nulled(value: Any, where: str, found: list[str]) -> Any:
    """value with every non-finite float replaced by None; the path of each one appended to found."""
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) \
            and not math.isfinite(value):
        found.append(f"{where} is {float(value)}")
        return None
    if isinstance(value, Mapping):
        return {k: _nulled(v, f"{where}.{k}", found) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nulled(v, f"{where}[{i}]", found) for i, v in enumerate(value)]
    return value


def finite_or_null(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of data with every non-finite float (at any depth) as None and a reason beside its top-level key.

    {"test_loss": inf} -> {"test_loss": None, "test_loss_reason": "test_loss is inf: not finite"};
    {"fd_judge": {"normal": nan}} -> {"fd_judge": {"normal": None}, "fd_judge_reason": "fd_judge.normal is nan: ..."}.
    A reason the data already gives for that key (a non-empty string) is kept, the new one appended.
    """
    out: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    for key, value in data.items():
        found: list[str] = []
        out[key] = _nulled(value, str(key), found)
        if found:
            reasons[f"{key}_reason"] = "; ".join(found) + ": not finite, written as null"
    for key, reason in reasons.items():
        old = out.get(key, data.get(key))
        out[key] = f"{old}; {reason}" if isinstance(old, str) and old else reason
    return out


def dumps(data: Any, **kwargs: Any) -> str:
    """json.dumps(data, allow_nan=False, **kwargs), a mapping first passed through finite_or_null.

    Raises ValueError for a non-finite float inside data that is not a mapping (nothing to put a reason beside).
    """
    return json.dumps(finite_or_null(data) if isinstance(data, Mapping) else data, allow_nan=False, **kwargs)


def write_json(path: str | Path, data: Mapping[str, Any], indent: int | None = 2, **kwargs: Any) -> Path:
    """Write data to path as strict JSON (see dumps), with a final newline, whole or not at all (a full disk leaves
    the file that was there: lego_vae.files.write_text); returns the path."""
    return write_text(path, dumps(data, indent=indent, **kwargs) + "\n")
