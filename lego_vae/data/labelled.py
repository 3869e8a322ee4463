"""The rendered sources, whose faces carry labels: their factors, and n labelled faces of a render set.

    factors_of("ldraw")                   # {factor: (class, ...)}; "extras" lists 0+ items per face
    pixels, labels = render_labelled("ldraw", 1000, size=64, seed=7)   # (N, S, S, 3) uint8, a dict each

The attribute judge trains on these (lego_vae.evaluation.judge); photo sources have no labels.
"""

from __future__ import annotations

import numpy as np

from lego_vae.data import synthetic
from lego_vae.data.ldraw import labels as ldraw_labels
from lego_vae.data.ldraw.designs import load_designs
from lego_vae.data.ldraw.render import RENDER_VERSION, render_in_batches
from lego_vae.data.splits import design_splits

LABELLED: dict[str, dict[str, tuple[str, ...]]] = {"synthetic": synthetic.FACTORS,
                                                   "ldraw": ldraw_labels.FACTORS}


def factors_of(source: str) -> dict[str, tuple[str, ...]] | None:
    """The factors of a source's labels and their classes; None for a photo source."""
    return LABELLED.get(source)


def render_version(source: str) -> int | None:
    """The version of a rendered source's look (a judge of older renders is trained again); None for synthetic
    faces, whose judges' cache keys predate it."""
    return RENDER_VERSION if source == "ldraw" else None


def render_labelled(source: str, n: int, size: int, seed: int,
                    among: list[int] | None = None) -> tuple[np.ndarray, list[dict]]:
    """Faces 0..n-1 of render set `seed` of a rendered source: (n, S, S, 3) uint8 and their labels.

    ldraw: face i shows design among[i mod len(among)], by default every design (the judge is the measuring
    instrument: no VAE trains on its render set). Raises KeyError for a photo source.
    """
    if source == "synthetic":
        return synthetic.render_faces(n, size=size, seed=seed)
    if source != "ldraw":
        raise KeyError(f"{source}: not a rendered source ({', '.join(LABELLED)})")
    designs = load_designs()
    pool = range(len(designs)) if among is None else among
    which = [pool[i % len(pool)] for i in range(n)]
    labels = ldraw_labels.design_labels([f"{designs.names[d]}#{i}" for i, d in enumerate(which)], seed)
    return render_in_batches(designs, which, size, seed), labels


def held_out_designs(seed: int, val_fraction: float, test_fraction: float) -> list[int]:
    """Indices of the LDraw designs in the test split of a run's data settings (no training step saw them)."""
    return np.flatnonzero(design_splits(seed, val_fraction, test_fraction) == 2).tolist()
