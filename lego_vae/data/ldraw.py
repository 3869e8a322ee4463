"""Real printed minifig heads: the LDraw library's designs rendered as photo-like images, offline.

The designs ship with the package (ldraw/heads.npz: each head's print as a palette texture over the head's
cylinder, made by scripts/ldraw_heads.py from the LDraw.org parts library, CC BY: ldraw/NOTICE). Here they
are put on the head of LDraw part 3626b (LDU, y down: a cylinder of radius 13 over y 4..17, its edges rounded
to radius 8 at y 0 and 21, a stud of radius 6 above, a neck of radius 8 below), seen by an orthographic camera,
lit (ambient, one soft key light, a specular highlight) and set on a light backdrop:

    pixels, params = render_heads(designs, [0, 0, 5], size=64, seed=0)   # (3, 64, 64, 3) uint8, one dict each

Render i of set `seed` draws its pose (yaw, pitch, roll, scale, shift), light, head colour and backdrop from
`np.random.default_rng([seed, i])` alone, so it never depends on batch or order. Shading runs in torch, a batch
at a time: 20,000 renders at 64 px take about a minute on 2 cores (bench/data_pipeline.py).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch
from torch.nn import functional as F

from lego_vae.data.ldraw_labels import labels_for

CHUNK = 2000  # renders per task when many are rendered at once
SUPERSAMPLE = 2  # render at 2x, then average 2x2: antialiasing of the outline and the print
GEOMETRY_SIZE = 320  # pixels of the precomputed views of the bare head
PITCHES = np.radians(np.linspace(-6.0, 18.0, 9))  # camera elevations of the precomputed views (+: from above)
HALF_EXTENT = 19.0  # LDU from the frame's centre to its edge at scale 1: the head fills about 72% of the height
CENTRE_Y = 10.0  # LDU: the point of the head (between stud top -4 and neck bottom 24) on the frame's centre
POSE = {"yaw": math.radians(14), "roll": math.radians(4), "scale": (0.8, 1.12), "shift": 1.6}
# Head colours as LDraw's colour table gives them (LDConfig: Yellow 14, Light Nougat 78, Nougat 92,
# Medium Nougat 84, Reddish Brown 70), with how often a render gets each.
HEAD_COLOURS: dict[str, tuple[float, tuple[int, int, int]]] = {
    "yellow": (0.55, (250, 200, 10)),
    "light_nougat": (0.18, (255, 201, 149)),
    "nougat": (0.11, (187, 128, 90)),
    "medium_nougat": (0.08, (170, 125, 85)),
    "reddish_brown": (0.08, (95, 49, 9)),
}


@dataclass(frozen=True)
class Designs:
    """The shipped printed heads: names (N,), descriptions, keywords, authors, (N, H, W) uint8 palette textures
    (0: the head's colour), the palette's LDraw codes (K,) and RGB (K, 3), and the texture grid (theta_max, y0, dy)."""

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
    with resources.files("lego_vae.data").joinpath("ldraw/heads.npz").open("rb") as f:
        data = np.load(f)
        return Designs(**{name: data[name] for name in Designs.__dataclass_fields__})


def _inside(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Part id at LDraw points: 0 outside, 1 the head's printable surface, 2 the stud, 3 the neck."""
    r = np.hypot(x, z)
    body = (y >= 4) & (y <= 17) & (r <= 13)
    top = (y >= 0) & (y < 4) & ((r <= 8) | (((r - 8) / 5) ** 2 + ((y - 4) / 4) ** 2 <= 1))
    bottom = (y > 17) & (y <= 21) & ((r <= 8) | (((r - 8) / 5) ** 2 + ((y - 17) / 4) ** 2 <= 1))
    stud = (y >= -4) & (y < 0) & (r <= 6)
    neck = (y > 21) & (y <= 24) & (r <= 8)
    return np.select([body | top | bottom, stud, neck], [1, 2, 3], 0)


def _normal(x: np.ndarray, y: np.ndarray, z: np.ndarray, part: np.ndarray) -> np.ndarray:
    """(3, ...) unit outward normals of the head at surface points of the given parts."""
    r = np.maximum(np.hypot(x, z), 1e-6)
    radial = np.stack([x / r, np.zeros_like(r), z / r])
    up = np.stack([np.zeros_like(r), -np.ones_like(r), np.zeros_like(r)])
    # The rounded edges are quarter ellipses in (r, y) with semi-axes 5 (r) and 4 (y): gradient of the ellipse.
    centre = np.where(y < 10, 4.0, 17.0)
    er, ey = np.maximum(r - 8, 0) / 25, (y - centre) / 16
    ellipse = np.stack([er * x / r, ey, er * z / r])
    on_ring = (part == 1) & ((y < 4) | (y > 17)) & (r > 8.01)
    on_cap = ((part == 1) & ((y < 4) | (y > 17)) & (r <= 8.01)) | ((part == 2) & (y < -3.9))
    n = np.where(on_ring, ellipse, np.where(on_cap, up * np.sign(10 - y), radial))
    return n / np.maximum(np.linalg.norm(n, axis=0), 1e-9)


@functools.cache
def head_views(size: int = GEOMETRY_SIZE) -> torch.Tensor:
    """The bare head seen from each of PITCHES: (P, 7, size, size) float32 maps over the frame at scale 1
    (x right, y down, HALF_EXTENT LDU each side of (0, CENTRE_Y)): part id, theta (radians from the front),
    y (LDU), normal (3, camera frame: x right, y down, z away from the camera), visible (0/1)."""
    a = (np.arange(size) + 0.5) / size * 2 - 1
    u, v = np.meshgrid(a * HALF_EXTENT, a * HALF_EXTENT + CENTRE_Y)
    steps = np.linspace(-20.0, 20.0, 161)  # 0.25 LDU along each ray, then bisection
    views = []
    for pitch in PITCHES:
        c, s = math.cos(pitch), math.sin(pitch)
        # Camera frame -> LDraw: rotate about x by the pitch (the camera above the head looks down at it).
        def point(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            yc, zc = v - CENTRE_Y, t
            return u, CENTRE_Y + c * yc + s * zc, -s * yc + c * zc
        first = np.full(u.shape, np.nan)
        for t in steps:  # the first step inside along each ray (from the camera at z = -20)
            hit = np.isnan(first) & (_inside(*point(np.full(u.shape, t))) > 0)
            first[hit] = t
        found = ~np.isnan(first)
        lo, hi = np.where(found, first - 0.25, 0.0), np.where(found, first, 0.0)
        for _ in range(10):
            mid = (lo + hi) / 2
            inside = _inside(*point(mid)) > 0
            hi, lo = np.where(inside, mid, hi), np.where(inside, lo, mid)
        x, y, z = point(hi)
        part = np.where(found, _inside(*point(hi + 1e-3)), 0)
        n = _normal(x, y, z, part)
        # LDraw normal -> camera frame (the inverse rotation).
        n_cam = np.stack([n[0], c * n[1] - s * n[2], s * n[1] + c * n[2]])
        views.append(np.stack([part, np.arctan2(x, -z), y, *n_cam, (part > 0).astype(float)]))
    return torch.from_numpy(np.stack(views).astype(np.float32))


def _pick(rng: np.random.Generator, table: dict) -> str:
    names = list(table)
    return names[rng.choice(len(names), p=np.array([table[k][0] for k in names]) / sum(t[0] for t in table.values()))]


def draw_params(index: int, seed: int) -> dict:
    """The random settings of render `index` of set `seed`: pose, light, head colour, backdrop, noise."""
    rng = np.random.default_rng([seed, index])
    light = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.9, -0.2), -1.0])  # camera frame: towards the viewer
    return {
        "yaw": float(rng.uniform(-1, 1) * POSE["yaw"]), "pitch": int(rng.integers(len(PITCHES))),
        "roll": float(rng.uniform(-1, 1) * POSE["roll"]), "scale": float(rng.uniform(*POSE["scale"])),
        "shift": rng.uniform(-1, 1, 2).tolist(), "light": (light / np.linalg.norm(light)).tolist(),
        "ambient": float(rng.uniform(0.45, 0.65)), "specular": float(rng.uniform(0.15, 0.45)),
        "shininess": float(rng.uniform(12, 40)), "head": _pick(rng, HEAD_COLOURS),
        "tint": rng.uniform(0.94, 1.04, 3).tolist(), "backdrop": float(rng.choice([rng.uniform(0.9, 1.0), 1.0])),
        "noise": float(rng.uniform(0.0, 0.015)),
    }


def _sampling_grid(params: list[dict], pixels: int) -> torch.Tensor:
    """(B, pixels, pixels, 2) grid_sample coordinates into head_views for each render's roll, scale and shift."""
    a = (torch.arange(pixels, dtype=torch.float32) + 0.5) / pixels * 2 - 1
    yy, xx = torch.meshgrid(a, a, indexing="ij")
    grids = []
    for p in params:
        c, s = math.cos(p["roll"]), math.sin(p["roll"])
        shift = torch.tensor(p["shift"], dtype=torch.float32) * POSE["shift"] / HALF_EXTENT
        gx = (c * xx + s * yy) / p["scale"] - shift[0]
        gy = (-s * xx + c * yy) / p["scale"] - shift[1]
        grids.append(torch.stack([gx, gy], -1))
    return torch.stack(grids)


def render_heads(designs: Designs, which: list[int] | np.ndarray, size: int = 64, seed: int = 0,
                 start: int = 0) -> tuple[np.ndarray, list[dict]]:
    """Render designs[which[i]] as render start + i of set `seed`: (N, size, size, 3) uint8 and their settings."""
    views, out, settings = head_views(), [], []
    theta_max, y0, dy = (float(g) for g in designs.grid)
    height, width = designs.textures.shape[1:]
    for first in range(0, len(which), 64):
        batch = [int(d) for d in which[first:first + 64]]
        params = [draw_params(start + first + i, seed) for i in range(len(batch))]
        pixels = size * SUPERSAMPLE
        maps = views[[p["pitch"] for p in params]]  # (B, 7, G, G)
        maps = F.grid_sample(maps, _sampling_grid(params, pixels), mode="nearest", padding_mode="zeros",
                             align_corners=False)
        part, theta, y, normal, visible = maps[:, 0], maps[:, 1], maps[:, 2], maps[:, 3:6], maps[:, 6:7]
        # The print: each design's palette texture in RGB with the head's colour at index 0.
        heads = torch.tensor([HEAD_COLOURS[p["head"]][1] for p in params], dtype=torch.float32) / 255
        palette = torch.from_numpy(designs.rgb).float().div(255).expand(len(batch), -1, -1).clone()
        palette[:, 0] = heads
        idx = torch.from_numpy(designs.textures[batch].astype(np.int64))  # (B, H, W)
        texture = torch.gather(palette, 1, idx.flatten(1)[..., None].expand(-1, -1, 3)).view(len(batch), height, width, 3)
        yaw = torch.tensor([p["yaw"] for p in params])[:, None, None]
        tu = (theta + yaw) / theta_max  # grid_sample's [-1, 1] over the texture's width
        tv = (y - y0) / dy / height * 2 - 1
        colour = F.grid_sample(texture.permute(0, 3, 1, 2), torch.stack([tu, tv], -1), mode="bilinear",
                               padding_mode="border", align_corners=False)
        colour = torch.where((part == 1)[:, None], colour, heads[:, :, None, None])  # stud and neck: plain
        light = torch.tensor([p["light"] for p in params])[:, :, None, None]
        # Both the normals and the light point towards the camera (-z): Lambert, then Blinn-Phong's half vector.
        lambert = (normal * light).sum(1, keepdim=True).clamp(min=0)
        half = light + torch.tensor([0.0, 0.0, -1.0])[None, :, None, None]
        half = half / half.norm(dim=1, keepdim=True)
        spec = (normal * half).sum(1, keepdim=True).clamp(min=0)
        ambient = torch.tensor([p["ambient"] for p in params])[:, None, None, None]
        shininess = torch.tensor([p["shininess"] for p in params])[:, None, None, None]
        strength = torch.tensor([p["specular"] for p in params])[:, None, None, None]
        shade = ambient + (1 - ambient) * lambert
        shade = torch.where((part == 3)[:, None], shade * 0.55, shade)  # the neck sits in the head's shadow
        lit = colour * shade + strength * spec.pow(shininess)
        tint = torch.tensor([p["tint"] for p in params])[:, :, None, None]
        backdrop = torch.tensor([p["backdrop"] for p in params])[:, None, None, None].expand_as(lit)
        image = torch.where(visible > 0, (lit * tint).clamp(0, 1), backdrop)
        image = F.avg_pool2d(image, SUPERSAMPLE)
        noise = torch.tensor([p["noise"] for p in params])[:, None, None, None]
        # Each render's own noise (seeded by its set and index), so it never depends on the batch.
        grain = torch.stack([torch.randn(image.shape[1:], generator=torch.Generator().manual_seed(
            (seed * 1_000_003 + start + first + i) % 2**63)) for i in range(len(batch))])
        image = image + noise * grain
        out.append((image.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
        settings += params
    return np.concatenate(out) if out else np.zeros((0, size, size, 3), np.uint8), settings


def designs_digest() -> str:
    """A short hash of the shipped designs' file: a cache of renders is remade when the designs change."""
    with resources.files("lego_vae.data").joinpath("ldraw/heads.npz").open("rb") as f:
        return hashlib.blake2b(f.read(), digest_size=8).hexdigest()


def _render_chunk(which: list[int], size: int, seed: int, start: int) -> np.ndarray:
    torch.set_num_threads(1)  # one process per core
    return render_heads(load_designs(), which, size, seed, start)[0]


def render_in_batches(designs: Designs, which: list[int], size: int, seed: int) -> np.ndarray:
    """Renders 0..len(which)-1 of set `seed` (render i shows designs[which[i]]): (N, S, S, 3) uint8, the same as
    render_heads, on every core this process may use when there are many."""
    cores = len(os.sched_getaffinity(0))
    if len(which) <= CHUNK or cores == 1:
        return render_heads(designs, which, size, seed)[0]
    starts = range(0, len(which), CHUNK)
    with ProcessPoolExecutor(max_workers=cores) as pool:
        parts = list(pool.map(_render_chunk, [which[s:s + CHUNK] for s in starts], [size] * len(starts),
                              [seed] * len(starts), starts))
    return np.concatenate(parts)


def design_labels(names: list[str], seed: int) -> list[dict]:
    """The judge's labels of renders named "<design>#<index>" of set `seed` (lego_vae.data.ldraw_labels)."""
    heads = {}
    out = []
    for name in names:
        design, index = name.rsplit("#", 1)
        design = design.removeprefix("train-")
        i = int(index)
        if i not in heads:
            heads[i] = draw_params(i, seed)["head"]
        out.append(labels_for(design, heads[i]))
    return out
