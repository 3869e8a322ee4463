"""Which split (train, val, test) each image is in: a hash of (seed, its name), so that an image never moves
when others are added. Numpy only: the config layer reads the designs' splits without loading Lightning."""

from __future__ import annotations

import hashlib

import numpy as np

from lego_vae.data.ldraw.designs import load_designs

SPLITS = ("train", "val", "test")
TRAIN_ONLY = "train-"  # name prefix of the extra rendered faces (data.extra_train_faces): always in train


def split_of(names: list[str], seed: int, val_fraction: float, test_fraction: float) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) of each image, from a hash of (seed, its name) alone."""
    digests = [hashlib.blake2b(f"{seed}:{n}".encode(), digest_size=8).digest() for n in names]
    u = np.array([int.from_bytes(d, "big") / 2**64 for d in digests])
    return np.where(u < test_fraction, 2, np.where(u < test_fraction + val_fraction, 1, 0))


def design_splits(seed: int, val_fraction: float, test_fraction: float) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) of each shipped LDraw design, from a hash of (seed, its name)."""
    return split_of(list(load_designs().names), seed, val_fraction, test_fraction)


def design_of(name: str) -> str:
    """The LDraw design of a render's name ("3626bp01#000012", "train-3626bp01#020000" -> "3626bp01")."""
    return name.removeprefix(TRAIN_ONLY).split("#")[0]
