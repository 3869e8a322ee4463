"""What the renderers share: rendering on every core, a preview sheet and its `--preview` command line."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def pick(rng: np.random.Generator, table: dict) -> str:
    """One name of a probability table (values are p or (p, colour))."""
    names = list(table)
    p = np.array([v[0] if isinstance(v, tuple) else v for v in table.values()], dtype=float)
    return names[rng.choice(len(names), p=p / p.sum())]


def on_every_core(fn: Callable, jobs: list[tuple], initializer: Callable[[], Any] | None = None) -> list:
    """[fn(*job) for job in jobs], in a process per core this process may use when there are several."""
    cores = len(os.sched_getaffinity(0))
    if len(jobs) == 1 or cores == 1:
        return [fn(*job) for job in jobs]
    with ProcessPoolExecutor(max_workers=cores, initializer=initializer) as pool:
        return list(pool.map(fn, *zip(*jobs)))


def save_sheet(faces: np.ndarray, grid: int, path: str | Path) -> Path:
    """Write (grid², S, S, 3) uint8 faces as one grid x grid PNG (parent folders made); return the path."""
    size = faces.shape[1]
    sheet = faces.reshape(grid, grid, size, size, 3).transpose(0, 2, 1, 3, 4).reshape(grid * size, -1, 3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(path)
    return path


def preview_main(description: str, preview: Callable[..., Path], argv: list[str] | None = None) -> None:
    """CLI: `--preview FILE [--size 128] [--seed 0] [--grid 8]` calls preview(path, size=, seed=, grid=)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--preview", required=True, help="PNG file to write the grid of faces to")
    parser.add_argument("--size", type=int, default=128, help="pixels per face")
    parser.add_argument("--seed", type=int, default=0, help="which set of faces")
    parser.add_argument("--grid", type=int, default=8, help="faces per row and column")
    args = parser.parse_args(argv)
    print(preview(args.preview, size=args.size, seed=args.seed, grid=args.grid))
