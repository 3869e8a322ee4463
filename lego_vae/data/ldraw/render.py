"""Printed heads rendered as photo-like images: a design's print on the bare head, posed, lit, on a backdrop.

    pixels, params = render_heads(load_designs(), [0, 0, 5], size=64, seed=0)  # (3, 64, 64, 3) uint8, dicts
    python -m lego_vae.data.ldraw.render --preview heads.png [--size 128] [--seed 0]   # an 8x8 grid

Each render maps a design's palette texture (colour 0: the head's colour) onto the views of ldraw.head
through its roll, scale, shift and yaw, and shades it: ambient, a soft key light (Lambert), a Blinn-Phong
highlight, the neck in the head's shadow, sensor noise, box-downsampled from 2x. Render i of set `seed` draws
its settings from `np.random.default_rng([seed, i])` alone, so it never depends on batch or order. The
shading runs in torch, a batch at a time (bench/data_pipeline.py measures it).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from lego_vae.data.ldraw.designs import Designs, load_designs
from lego_vae.data.ldraw.head import HALF_EXTENT, PITCHES, head_views
from lego_vae.data.sheet import on_every_core, pick, preview_main, save_sheet

CHUNK = 2000  # renders per task when many are rendered at once
SUPERSAMPLE = 2  # render at 2x, then average 2x2: antialiasing of the outline and the print
RENDER_VERSION = 2  # bump when a render's look changes, so caches of older renders are not reused
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


def draw_params(index: int, seed: int) -> dict:
    """The random settings of render `index` of set `seed`: pose, light, head colour, backdrop, noise."""
    rng = np.random.default_rng([seed, index])
    light = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.9, -0.2), -1.0])  # camera frame: to the viewer
    return {
        "yaw": float(rng.uniform(-1, 1) * POSE["yaw"]), "pitch": int(rng.integers(len(PITCHES))),
        "roll": float(rng.uniform(-1, 1) * POSE["roll"]), "scale": float(rng.uniform(*POSE["scale"])),
        "shift": rng.uniform(-1, 1, 2).tolist(), "light": (light / np.linalg.norm(light)).tolist(),
        "ambient": float(rng.uniform(0.45, 0.65)), "specular": float(rng.uniform(0.15, 0.45)),
        "shininess": float(rng.uniform(12, 40)), "head": pick(rng, HEAD_COLOURS),
        "exposure": float(rng.uniform(1.0, 1.3)), "tint": rng.uniform(0.94, 1.04, 3).tolist(),
        "backdrop": float(rng.choice([rng.uniform(0.9, 1.0), 1.0])), "noise": float(rng.uniform(0.0, 0.015)),
    }


def _sampling_grid(params: list[dict], pixels: int) -> torch.Tensor:
    """(B, pixels, pixels, 2) grid_sample coordinates into head_views for each render's roll, scale, shift."""
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


def _column(params: list[dict], key: str) -> torch.Tensor:
    """Each render's setting `key` (a number or a vector) as a (B, 1 or K, 1, 1) tensor over its pixels."""
    return torch.tensor([p[key] for p in params]).view(len(params), -1, 1, 1)


def render_heads(designs: Designs, which: list[int] | np.ndarray, size: int = 64, seed: int = 0,
                 start: int = 0) -> tuple[np.ndarray, list[dict]]:
    """designs[which[i]] as render start + i of set `seed`: (N, size, size, 3) uint8 and their settings."""
    views, out, settings = head_views(), [], []
    theta_max, y0, dy = (float(g) for g in designs.grid)
    height, width = designs.textures.shape[1:]
    for first in range(0, len(which), 64):
        batch = [int(d) for d in which[first:first + 64]]
        params = [draw_params(start + first + i, seed) for i in range(len(batch))]
        maps = F.grid_sample(views[[p["pitch"] for p in params]], _sampling_grid(params, size * SUPERSAMPLE),
                             mode="nearest", padding_mode="zeros", align_corners=False)  # (B, 7, S, S)
        part, theta, y, normal, visible = maps[:, 0], maps[:, 1], maps[:, 2], maps[:, 3:6], maps[:, 6:7]
        # The print: each design's palette texture in RGB with the head's colour at index 0.
        heads = torch.tensor([HEAD_COLOURS[p["head"]][1] for p in params], dtype=torch.float32) / 255
        palette = torch.from_numpy(designs.rgb).float().div(255).expand(len(batch), -1, -1).clone()
        palette[:, 0] = heads
        idx = torch.from_numpy(designs.textures[batch].astype(np.int64))  # (B, H, W)
        texture = torch.gather(palette, 1, idx.flatten(1)[..., None].expand(-1, -1, 3))
        texture = texture.view(len(batch), height, width, 3)
        yaw = torch.tensor([p["yaw"] for p in params])[:, None, None]
        tu = (theta + yaw) / theta_max  # grid_sample's [-1, 1] over the texture's width
        tv = (y - y0) / dy / height * 2 - 1
        colour = F.grid_sample(texture.permute(0, 3, 1, 2), torch.stack([tu, tv], -1), mode="bilinear",
                               padding_mode="border", align_corners=False)
        colour = torch.where((part == 1)[:, None], colour, heads[:, :, None, None])  # stud and neck: plain
        light = _column(params, "light")
        # The normals and the light point towards the camera (-z): Lambert, then Blinn-Phong's half vector.
        lambert = (normal * light).sum(1, keepdim=True).clamp(min=0)
        half = light + torch.tensor([0.0, 0.0, -1.0])[None, :, None, None]
        half = half / half.norm(dim=1, keepdim=True)
        spec = (normal * half).sum(1, keepdim=True).clamp(min=0)
        ambient = _column(params, "ambient")
        shade = ambient + (1 - ambient) * lambert
        shade = torch.where((part == 3)[:, None], shade * 0.55, shade)  # the neck sits in the head's shadow
        lit = colour * shade + _column(params, "specular") * spec.pow(_column(params, "shininess"))
        # A product photo's exposure and white balance: bright, slightly off-neutral.
        tint = torch.tensor([[p["exposure"] * t for t in p["tint"]] for p in params])[:, :, None, None]
        image = torch.where(visible > 0, (lit * tint).clamp(0, 1), _column(params, "backdrop").expand_as(lit))
        image = F.avg_pool2d(image, SUPERSAMPLE)
        # Each render's own noise (seeded by its set and index), so it never depends on the batch.
        grain = torch.stack([torch.randn(image.shape[1:], generator=torch.Generator().manual_seed(
            (seed * 1_000_003 + start + first + i) % 2**63)) for i in range(len(batch))])
        image = image + _column(params, "noise") * grain
        out.append((image.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
        settings += params
    return np.concatenate(out) if out else np.zeros((0, size, size, 3), np.uint8), settings


def _render_chunk(which: list[int], size: int, seed: int, start: int, designs: Designs | None) -> np.ndarray:
    return render_heads(load_designs() if designs is None else designs, which, size, seed, start)[0]


def render_in_batches(designs: Designs, which: list[int], size: int, seed: int) -> np.ndarray:
    """Renders 0..len(which)-1 of set `seed` (render i shows designs[which[i]]) as render_heads gives them,
    (N, S, S, 3) uint8, on every core this process may use when there are many."""
    given = None if designs is load_designs() else designs  # the shipped ones: each process reads its own
    jobs = [(which[s : s + CHUNK], size, seed, s, given) for s in range(0, max(len(which), 1), CHUNK)]
    one_thread = functools.partial(torch.set_num_threads, 1)  # a process per core
    return np.concatenate(on_every_core(_render_chunk, jobs, one_thread))


def preview(path, size: int = 128, seed: int = 0, grid: int = 8) -> Path:
    """Write a grid x grid PNG of renders 0..grid²-1 of set `seed` (render i: design i); return the path."""
    designs = load_designs()
    heads = render_heads(designs, [i % len(designs) for i in range(grid * grid)], size, seed)[0]
    return save_sheet(heads, grid, path)


def main(argv: list[str] | None = None) -> None:
    """CLI: write a preview sheet of rendered printed heads."""
    preview_main(__doc__.splitlines()[0], preview, argv)


if __name__ == "__main__":
    main()
