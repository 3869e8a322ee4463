"""Paths between two latents for morphs: linear, and slerp that keeps every norm between the ends' norms."""

from __future__ import annotations

import math

import torch
from torch import Tensor

INTERPOLATIONS = ("linear", "slerp")
# Below this (float64, unit vectors) the part of b orthogonal to a is rounding noise: parallel or opposite.
_ORTHOGONAL_TOL = 1e-9


def _unit_orthogonal(u: Tensor, w: Tensor) -> Tensor | None:
    """The unit vector of w with its component along the unit vector u removed, or None if nothing is left.
    Gram-Schmidt twice ("twice is enough", Giraud et al. 2005): orthogonal to rounding even for w nearly along u."""
    for _ in range(2):
        w = w - torch.dot(u, w) * u
    norm = w.norm()
    return w / norm if norm > _ORTHOGONAL_TOL else None


def interpolate_latents(a: Tensor, b: Tensor, steps: int, mode: str = "linear") -> Tensor:
    """steps latents (steps, latent) from a to b (each (latent,)), both ends included exactly.

    linear: z(t) = (1 - t) a + t b, t = 0, 1/(steps-1), ..., 1; its norms never exceed max(|a|, |b|).
    slerp: z(t) = ((1 - t)|a| + t|b|) (cos(t w) u + sin(t w) v), u = a/|a|, v the unit vector of b made
    orthogonal to u, w the angle between a and b: the direction turns along the great circle at constant speed
    (Shoemake 1985; White 2016, "Sampling generative networks", without its division by sin(w), which explodes
    for opposite latents) while the norm goes linearly from |a| to |b|. Where there is no circle (a or b zero,
    parallel, or opposite in one dimension) it is the straight line; opposite latents turn through the
    coordinate axis least aligned with a, so the path is the same on every run.
    Computed in float64 and returned in a's dtype and device. Raises ValueError for an unknown mode,
    steps < 1 or a and b of other shapes than one equal (latent,).
    """
    if mode not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation mode {mode!r}")
    if steps < 1:
        raise ValueError(f"steps={steps}: must be >= 1")
    if a.dim() != 1 or a.shape != b.shape:
        raise ValueError(f"interpolate_latents takes two latents of one shape (latent,), got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    # On the CPU in float64: a few numbers, and every device (MPS too) gets the same path.
    x, y = a.detach().cpu().double(), b.detach().cpu().double()
    t = torch.linspace(0, 1, steps, dtype=torch.float64).unsqueeze(1)  # (steps, 1); steps = 1: t = 0 only
    path = (1 - t) * x + t * y  # (steps, latent)
    r_a, r_b = x.norm(), y.norm()
    if mode == "slerp" and r_a > 0 and r_b > 0:
        u, b_hat = x / r_a, y / r_b
        cos = torch.dot(u, b_hat)
        v = _unit_orthogonal(u, b_hat)
        if v is not None:
            omega = torch.atan2(torch.dot(v, b_hat), cos)
        elif cos < 0 and len(u) > 1:  # opposite: turn through the axis least aligned with a
            v, omega = _unit_orthogonal(u, torch.eye(len(u), dtype=torch.float64)[u.abs().argmin()]), math.pi
        if v is not None:  # else parallel, or opposite in one dimension: the straight line
            direction = torch.cos(t * omega) * u + torch.sin(t * omega) * v  # (steps, latent), unit to rounding
            direction = direction / direction.norm(dim=1, keepdim=True)
            path = ((1 - t) * r_a + t * r_b) * direction
    path[0] = x  # the ends are the given latents, to the last bit
    if steps > 1:
        path[-1] = y
    return path.to(device=a.device, dtype=a.dtype)
