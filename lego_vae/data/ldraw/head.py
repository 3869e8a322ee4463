"""The bare head of LDraw part 3626b, seen from a few camera elevations, computed once per process.

In LDU, y down, the front towards -z: a cylinder of radius 13 over y 4..17, its edges rounded (quarter
ellipses of semi-axes 5 across and 4 up) to radius 8 at y 0 and 21, a stud of radius 6 over y -4..0 and a neck
of radius 8 over y 21..24. An orthographic camera; each ray is marched in 0.25 LDU steps, then bisected.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

GEOMETRY_SIZE = 320  # pixels of the precomputed views of the bare head
PITCHES = np.radians(np.linspace(-6.0, 18.0, 9))  # camera elevations of the precomputed views (+: from above)
HALF_EXTENT = 20.5  # LDU from the frame's centre to its edge at scale 1: the head fills ~68% of the height
CENTRE_Y = 10.0  # LDU: the point of the head (between stud top -4 and neck bottom 24) on the frame's centre


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
    # The rounded edges are quarter ellipses in (r, y) with semi-axes 5 (r) and 4 (y): their gradient.
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

        def point(t: np.ndarray, c: float = c, s: float = s) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            # Camera frame -> LDraw: rotated about x by the pitch (a camera above the head looks down at it).
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
