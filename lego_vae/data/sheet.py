"""A preview sheet of a renderer's faces, and the `--preview` command line the renderers share."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def save_sheet(faces: np.ndarray, grid: int, path: str | Path) -> Path:
    """Write (grid², S, S, 3) uint8 faces as one grid x grid PNG (parent folders created); return the path."""
    size = faces.shape[1]
    sheet = faces.reshape(grid, grid, size, size, 3).transpose(0, 2, 1, 3, 4).reshape(grid * size, grid * size, 3)
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
