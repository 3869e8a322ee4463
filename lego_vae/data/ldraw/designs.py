"""The printed heads shipped with the package: heads.npz beside this file (scripts/ldraw_heads.py made it from
the LDraw.org parts library, CC BY: NOTICE beside it)."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources

import numpy as np


@dataclass(frozen=True)
class Designs:
    """The shipped printed heads: names (N,), descriptions, keywords, authors, (N, H, W) uint8 palette
    textures (0: the head's colour), the palette's LDraw codes (K,) and RGB (K, 3), the texture grid
    (theta_max, y0, dy)."""

    names: np.ndarray
    description: np.ndarray
    keywords: np.ndarray
    author: np.ndarray
    textures: np.ndarray
    codes: np.ndarray
    rgb: np.ndarray
    grid: np.ndarray

    def __len__(self) -> int:
        return len(self.names)


@functools.cache
def load_designs() -> Designs:
    """The printed heads shipped in lego_vae/data/ldraw/heads.npz (read once per process)."""
    with resources.files("lego_vae.data.ldraw").joinpath("heads.npz").open("rb") as f:
        data = np.load(f)
        return Designs(**{name: data[name] for name in Designs.__dataclass_fields__})


def designs_digest() -> str:
    """A short hash of the shipped designs' file: a cache of renders is remade when the designs change."""
    with resources.files("lego_vae.data.ldraw").joinpath("heads.npz").open("rb") as f:
        return hashlib.blake2b(f.read(), digest_size=8).hexdigest()
