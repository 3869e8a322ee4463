"""Make lego_vae/data/ldraw/heads.npz, the printed minifig heads shipped with the package, from the LDraw library.

    python scripts/ldraw_heads.py LIBRARY [--out lego_vae/data/ldraw/heads.npz]

LIBRARY is the LDraw.org parts library (https://library.ldraw.org, complete.zip unpacked: parts/, p/ and
LDConfig.ldr) or a copy of github.com/schiele/openscad-ldraw, whose .scad files keep every original .dat line
as a `// ` comment (parts/, p/ and colors.scad, LDConfig's table). The library is CC BY 2.0/4.0 by LDraw.org's
authors: lego_vae/data/ldraw/NOTICE says so and names the authors of the shipped heads.

What it keeps of each printed head (parts/3626[abc]p*: "Minifig Head with ... Pattern"; parts moved or
obsolete, whose description starts with "~", are left out): its name, description, keywords and authors, and
its print as a texture on the head's cylinder, made here so the package needs no parser:

- Every polygon (type 3 and 4 lines, subfiles and primitives followed, colour 16 inherited) that lies on the
  head's outer surface (radius >= 7.5 LDU from the axis) and is not of the main colour 16 is drawn, in file
  order, into a palette-index image over (theta, y): theta = atan2(x, -z), the angle from the front (-z) of
  the head, in [-THETA, THETA]; y in LDU, downward as in LDraw. Index 0 is the main (head) colour, chosen
  at render time; index k > 0 is LDraw colour codes[k] with the RGB rgb[k] of LDConfig.
- The head itself (LDraw 3626b): a cylinder of radius 13 LDU over y 4..17, rounded to radius 8 at y 0 and 21,
  a stud of radius 6 above it; lego_vae.data.ldraw draws it, not this script.
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

THETA = 2.1  # radians each side of the front: the print a view within +-30 degrees of the front can show
WIDTH, HEIGHT = 256, 112  # texture pixels over theta and y
Y0, DY = -0.4, 0.2  # LDU: the texture's first row and its step
MIN_RADIUS = 7.5  # LDU: polygons nearer the axis (the top, the stud, the inside) are not printed surface
MAIN, EDGE = 16, 24


def dat_lines(path: Path) -> list[str]:
    """The LDraw lines of a .dat file, or the `// ` comments of an openscad-ldraw .scad file."""
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if path.suffix == ".dat":
        return text
    return [line[3:] for line in text if line.startswith("// ")]


class Library:
    """An LDraw library folder: finds part and primitive files by their LDraw name, parses each once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.suffix = ".dat" if any((root / "parts").glob("*.dat")) else ".scad"
        self.cache: dict[str, list[tuple[int, np.ndarray]]] = {}

    def find(self, name: str) -> Path | None:
        stem = name.lower().replace("\\", "/").removesuffix(".dat")
        for folder in ("parts", "p"):
            path = self.root / folder / f"{stem}{self.suffix}"
            if self.suffix == ".scad":  # openscad-ldraw writes '-' as '-' but '.' of names as '_'
                path = self.root / folder / f"{stem.replace('.', '_')}{self.suffix}"
            if path.exists():
                return path
        return None

    def polygons(self, name: str) -> list[tuple[int, np.ndarray]]:
        """(colour, (k, 3) vertices) of every triangle and quad of a file, subfiles included, in its frame."""
        if name in self.cache:
            return self.cache[name]
        path = self.find(name)
        out: list[tuple[int, np.ndarray]] = []
        self.cache[name] = out  # a file that refers to itself ends here
        if path is None:
            print(f"warning: {name} not found in {self.root}", file=sys.stderr)
            return out
        for line in dat_lines(path):
            parts = line.split()
            if not parts or parts[0] not in "134" or len(parts[0]) != 1:
                continue
            kind, colour = parts[0], int(parts[1]) if parts[1].isdigit() else MAIN
            if kind == "1" and len(parts) >= 15:
                x, y, z, a, b, c, d, e, f, g, h, i = map(float, parts[2:14])
                matrix, offset = np.array([[a, b, c], [d, e, f], [g, h, i]]), np.array([x, y, z])
                for inner, vertices in self.polygons(" ".join(parts[14:])):
                    out.append((colour if inner == MAIN else inner, vertices @ matrix.T + offset))
            elif kind in "34":
                count = int(kind)
                vertices = np.array(list(map(float, parts[2:2 + 3 * count]))).reshape(count, 3)
                out.append((colour, vertices))
        return out


def header(path: Path) -> dict:
    """Description (the first line), keywords and authors of a part file."""
    lines = dat_lines(path)
    description = lines[0].removeprefix("0 ").strip() if lines else ""
    keywords = [line.removeprefix("0 !KEYWORDS").strip() for line in lines if line.startswith("0 !KEYWORDS")]
    authors = [line.removeprefix("0 Author:").strip() for line in lines if line.startswith("0 Author:")]
    return {"description": description, "keywords": ", ".join(keywords), "author": "; ".join(authors)}


def colour_table(root: Path) -> dict[int, tuple[int, int, int]]:
    """LDraw colour code -> RGB, from LDConfig.ldr or openscad-ldraw's colors.scad (its LDConfig part)."""
    table: dict[int, tuple[int, int, int]] = {}
    if (root / "LDConfig.ldr").exists():
        for match in re.finditer(r"CODE\s+(\d+)\s+VALUE\s+#([0-9A-Fa-f]{6})", (root / "LDConfig.ldr").read_text()):
            table[int(match[1])] = tuple(int(match[2][i:i + 2], 16) for i in (0, 2, 4))
        return table
    text = (root / "colors.scad").read_text().split("function ldraw_color_LDCfgalt")[0]
    for match in re.finditer(r"\(id==(\d+)\) \? \[\"#([0-9A-Fa-f]{6})", text):
        table[int(match[1])] = tuple(int(match[2][i:i + 2], 16) for i in (0, 2, 4))
    return table


def texture(polygons: list[tuple[int, np.ndarray]], palette: dict[int, int]) -> np.ndarray:
    """(HEIGHT, WIDTH) uint8 palette indices of the print over (theta, y); 0 where the head's colour shows."""
    image = Image.new("L", (WIDTH, HEIGHT), 0)
    draw = ImageDraw.Draw(image)
    for colour, vertices in polygons:
        if colour in (MAIN, EDGE):
            continue
        x, y, z = vertices.T
        if np.hypot(x, z).min() < MIN_RADIUS:
            continue
        theta = np.arctan2(x, -z)
        if theta.max() - theta.min() > math.pi:  # straddles the back seam: never seen from the front
            continue
        u = (theta + THETA) / (2 * THETA) * WIDTH
        v = (y - Y0) / DY
        if u.max() < 0 or u.min() > WIDTH:
            continue
        index = palette.setdefault(colour, len(palette) + 1)
        draw.polygon(list(zip(u.tolist(), v.tolist())), fill=index)
    return np.asarray(image, dtype=np.uint8)


LICENCE_FILES = ("CAreadme.txt", "CAlicense.txt", "CAlicense4.txt")


def write_notice(folder: Path, source: str, names: list[str], headers: list[dict]) -> None:
    """NOTICE (where the designs come from, their licence, what was changed, every author) and the licence files."""
    authors = sorted({a.strip() for h in headers for a in h["author"].split(";") if a.strip()})
    lines = [
        "The printed minifig head designs in heads.npz come from the LDraw.org Parts Library",
        "(https://library.ldraw.org), licensed under CC BY 2.0 and CC BY 4.0: see CAreadme.txt, CAlicense.txt and",
        "CAlicense4.txt beside this file. LDraw is a trademark of the Estate of James Jessiman; LEGO is a trademark of",
        "the LEGO Group, which does not sponsor, authorize or endorse this project.",
        "",
        f"Made by scripts/ldraw_heads.py from {source}: each part's printed polygons were drawn into a texture",
        "over the head's cylinder (angle x height); the geometry, edges and conditional lines were left out.",
        f"{len(names)} parts: {', '.join(names)}.",
        "",
        "Authors of these parts (as their files name them):",
        *[f"  {a}" for a in authors],
    ]
    (folder / "NOTICE").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("library", type=Path)
    parser.add_argument("--out", type=Path, default=Path("lego_vae/data/ldraw/heads.npz"))
    parser.add_argument("--source", default="the LDraw.org parts library",
                        help="how NOTICE names the library copy read (e.g. its version or repository and commit)")
    args = parser.parse_args(argv)
    library = Library(args.library)
    colours = colour_table(args.library)
    palette: dict[int, int] = {}  # LDraw colour code -> palette index (1, 2, ...)
    names, headers, textures = [], [], []
    for path in sorted((args.library / "parts").glob(f"3626[abc]p*{library.suffix}")):
        info = header(path)
        if info["description"].startswith("~") or "Minifig Head" not in info["description"]:
            continue
        tex = texture(library.polygons(path.stem + ".dat"), palette)
        if not tex.any():
            continue
        names.append(path.stem)
        headers.append(info)
        textures.append(tex)
    if len(palette) > 255:
        raise SystemExit(f"error: {len(palette)} colours do not fit a uint8 palette")
    codes = np.zeros(len(palette) + 1, dtype=np.int32)
    codes[0] = MAIN
    rgb = np.zeros((len(palette) + 1, 3), dtype=np.uint8)
    for code, index in palette.items():
        codes[index] = code
        rgb[index] = colours.get(code, (255, 0, 255))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out, names=np.array(names), description=np.array([h["description"] for h in headers]),
        keywords=np.array([h["keywords"] for h in headers]), author=np.array([h["author"] for h in headers]),
        textures=np.stack(textures), codes=codes, rgb=rgb,
        grid=np.array([THETA, Y0, DY], dtype=np.float64),
    )
    write_notice(args.out.parent, args.source, names, headers)
    for name in LICENCE_FILES:  # the official library has them at its root, openscad-ldraw in orig/
        found = [p for p in (args.library / name, args.library / "orig" / name) if p.exists()]
        if found:
            shutil.copyfile(found[0], args.out.parent / name)
    print(f"{len(names)} printed heads, {len(palette)} colours -> {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
