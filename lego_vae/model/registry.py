"""Importing every module of a package, so that a new file in lego_vae/model/archs or likelihoods registers itself."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable


def import_all(package: str, path: Iterable[str]) -> None:
    """Import each module of the package (its __name__ and __path__), in the order of their names."""
    for module in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        importlib.import_module(f"{package}.{module.name}")
