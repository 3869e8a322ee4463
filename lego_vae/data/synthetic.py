"""Procedural Lego minifigure heads (front view) that imitate Bricklink product photos.

Each face is drawn at 4x its output size with Pillow. Every shape is a polygon in a head-centred frame
(head half-width = 1, y down), so rotation, scale and shift cost nothing and need no resampling. The
canvas is box-downsampled, shaded in numpy at output size (cylinder fall-off, specular streak, backdrop
shadow), colour-jittered and round-tripped through JPEG like a web photo. Image `index` of set `seed`
uses only `np.random.default_rng([seed, index])`, so it never depends on batch or order.
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lego_vae.data.sheet import pick, preview_main, save_sheet

SUPERSAMPLE = 4  # draw at 4x, then box-downsample: cheap antialiasing

RGB = tuple[int, int, int]

# Factor tables: name -> probability (and colour as photographed).
SKIN_TONES: dict[str, tuple[float, RGB]] = {
    "yellow": (0.60, (247, 206, 44)),
    "light_nougat": (0.12, (240, 204, 182)),
    "nougat": (0.11, (224, 168, 120)),
    "medium_dark": (0.09, (178, 124, 80)),
    "reddish_brown": (0.08, (120, 58, 38)),
}
EYES: dict[str, float] = {
    "dots": 0.20, "dots_highlight": 0.22, "open": 0.14, "closed": 0.10,
    "wink": 0.10, "angry": 0.14, "sunglasses": 0.10,
}
BROWS: dict[str, float] = {"none": 0.12, "thin": 0.26, "thick": 0.20, "angry": 0.16, "worried": 0.12, "unibrow": 0.14}
BROW_COLORS: dict[str, tuple[float, RGB]] = {
    "black": (0.55, (34, 30, 28)),
    "brown": (0.25, (118, 64, 30)),
    "grey": (0.14, (128, 128, 130)),
    "white": (0.06, (236, 234, 228)),
}
MOUTHS: dict[str, float] = {
    "smile": 0.24, "grin": 0.18, "open": 0.10, "frown": 0.10, "straight": 0.12, "smirk": 0.14, "lipstick": 0.12,
}
# Extras are independent coin flips; conflicting ones are resolved in _sample_labels.
EXTRAS: dict[str, float] = {
    "beard": 0.20, "moustache": 0.14, "freckles": 0.12, "blush": 0.14, "scar": 0.08,
    "glasses": 0.10, "eyepatch": 0.05, "headset": 0.06, "wrinkles": 0.14,
}
BACKDROPS: dict[str, tuple[float, RGB]] = {"white": (0.65, (250, 250, 250)), "light_grey": (0.35, (224, 225, 228))}
# Printed ink is near-black or dark brown, never a pure primary.
INKS: dict[str, tuple[float, RGB]] = {"black": (0.75, (30, 26, 26)), "dark_brown": (0.25, (64, 38, 24))}
WHITE: RGB = (250, 250, 246)
LIP_RED: RGB = (190, 32, 48)
TONGUE: RGB = (214, 84, 84)
BLUSH_PINK: RGB = (236, 112, 112)
FRECKLE_BROWN: RGB = (150, 80, 40)
GEAR_GREY: RGB = (52, 52, 58)

# The factors drawn once per face, in the order they are drawn; FACTORS lists each one's classes.
_ONE_OF: dict[str, dict] = {"skin": SKIN_TONES, "eyes": EYES, "brows": BROWS, "brow_color": BROW_COLORS,
                            "mouth": MOUTHS}
FACTORS: dict[str, tuple[str, ...]] = {k: tuple(table) for k, table in (*_ONE_OF.items(), ("extras", EXTRAS))}

# Head geometry in head units (half-width of the head = 1, y down).
STUD = (-0.5, -1.22, 0.5, -0.84, 0.06)  # x0, y0, x1, y1, corner radius
BODY = (-1.0, -0.92, 1.0, 0.88, 0.28)
NECK = (-0.74, 0.78, 0.74, 1.08, 0.08)
HEAD_CENTRE_Y = (STUD[1] + NECK[3]) / 2  # the point that lands on the frame centre
UNIT = 0.31  # head half-width as a fraction of the frame: head ~62% wide, ~72% tall
# Pose labels: angle in degrees (positive turns clockwise on screen), scale of the head, dx/dy shift of
# the head centre as fractions of the frame. These are the largest magnitudes.
POSE = {"angle": 6.0, "scale": 0.08, "shift": 0.035}

_T = np.linspace(-1.0, 1.0, 13)  # parameter along open curves
_RING = np.linspace(0.0, 2 * np.pi, 33)  # parameter around closed curves


def _rounded_rect(x0: float, y0: float, x1: float, y1: float, r: float, n: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Outline of a rounded rectangle, clockwise from the top-right corner."""
    xs, ys = [], []
    for cx, cy, a0 in ((x1 - r, y0 + r, -90), (x1 - r, y1 - r, 0), (x0 + r, y1 - r, 90), (x0 + r, y0 + r, 180)):
        a = np.radians(a0 + np.linspace(0, 90, n))
        xs.append(cx + r * np.cos(a))
        ys.append(cy + r * np.sin(a))
    return np.concatenate(xs), np.concatenate(ys)


HEAD_PARTS = {name: _rounded_rect(*box) for name, box in (("neck", NECK), ("stud", STUD), ("body", BODY))}


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    """Colour a blended towards b by t (printed tints are solid, so blend up front)."""
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _jitter(rng: np.random.Generator, c: RGB, amount: float) -> RGB:
    """Colour with a shared lightness change and a small per-channel wobble."""
    v = np.array(c, float) * rng.uniform(1 - amount, 1 + amount) + rng.normal(0, 255 * amount / 3, 3)
    return tuple(int(x) for x in np.clip(v, 0, 255))  # type: ignore[return-value]


class _Pen:
    """Draws head-frame shapes onto the supersampled canvas under the pose transform."""

    def __init__(self, draw: ImageDraw.ImageDraw, origin: np.ndarray, px_per_unit: float, rot: np.ndarray):
        self.draw, self.o, self.k, self.m = draw, origin, px_per_unit, rot * px_per_unit

    def xy(self, x, y) -> list[float]:
        """Canvas coordinates, flat [x0, y0, x1, y1, ...] as Pillow takes them."""
        p = np.stack(np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float)), -1).reshape(-1, 2)
        return (p @ self.m.T + self.o).ravel().tolist()

    def poly(self, x, y, fill: RGB) -> None:
        self.draw.polygon(self.xy(x, y), fill=fill)

    def line(self, x, y, width: float, fill: RGB) -> None:
        """Stroke with round caps (Pillow's ends are square) of `width` head units."""
        w = max(1, round(width * self.k))
        pts = self.xy(x, y)
        self.draw.line(pts, fill=fill, width=w, joint="curve")
        for px, py in (pts[:2], pts[-2:]):
            self.draw.ellipse((px - w / 2, py - w / 2, px + w / 2, py + w / 2), fill=fill)

    def ellipse(self, cx, cy, rx, ry, fill: RGB | None = None, outline: RGB | None = None, width: float = 0.0):
        x, y = cx + rx * np.cos(_RING), cy + ry * np.sin(_RING)
        if fill is not None:
            self.poly(x, y, fill)
        if outline is not None:
            self.line(x, y, width, outline)

    def band(self, x, y, half, fill: RGB) -> None:
        """A stroke of varying thickness around a mostly horizontal centreline."""
        self.poly(np.concatenate([x, x[::-1]]), np.concatenate([y - half, (y + half)[::-1]]), fill)

    def dot(self, x: float, y: float, r: float, fill: RGB) -> None:
        """A small round dot (axis-aligned: rotation does not matter)."""
        (px, py), rr = self.xy(x, y), r * self.k
        self.draw.ellipse((px - rr, py - rr, px + rr, py + rr), fill=fill)


@dataclass
class _Face:
    """Where the features sit and which colours they use, for one face."""

    skin: RGB
    ink: RGB
    hair: RGB
    ex: float  # eye centres at (+-ex, ey)
    ey: float
    r: float  # eye dot radius
    mx: float  # mouth centre and half-width
    my: float
    mw: float
    by: float  # brow centreline height
    bl: float  # brow half-length
    stroke: float  # line width of printed strokes


def _sample_labels(rng: np.random.Generator) -> dict:
    """The factor labels of one face; the draws never depend on the image size."""
    labels = {k: pick(rng, table) for k, table in _ONE_OF.items()}
    extras = [name for name, p in EXTRAS.items() if rng.random() < p]
    # Sunglasses already cover both eyes; a patch replaces a lens of the glasses.
    if labels["eyes"] == "sunglasses":
        extras = [e for e in extras if e not in ("glasses", "eyepatch")]
    if "eyepatch" in extras and "glasses" in extras:
        extras.remove("glasses")
    labels["extras"] = extras
    labels["pose"] = {
        "angle": float(rng.uniform(-1, 1) * POSE["angle"]),
        "scale": float(1 + rng.uniform(-1, 1) * POSE["scale"]),
        "dx": float(rng.uniform(-1, 1) * POSE["shift"]),
        "dy": float(rng.uniform(-1, 1) * POSE["shift"]),
    }
    labels["backdrop"] = pick(rng, BACKDROPS)
    return labels


def _sample_face(rng: np.random.Generator, labels: dict) -> _Face:
    """Feature layout with the proportions of real heads: eyes ~45% and mouth ~72% down the head."""
    body_h = BODY[3] - BODY[1]
    ey = BODY[1] + rng.uniform(0.44, 0.50) * body_h
    return _Face(
        skin=_jitter(rng, SKIN_TONES[labels["skin"]][1], 0.04),
        ink=_jitter(rng, INKS[pick(rng, INKS)][1], 0.05),
        hair=_jitter(rng, BROW_COLORS[labels["brow_color"]][1], 0.06),
        ex=rng.uniform(0.28, 0.36), ey=ey, r=rng.uniform(0.085, 0.11),
        mx=rng.uniform(-0.04, 0.04), my=BODY[1] + rng.uniform(0.70, 0.77) * body_h, mw=rng.uniform(0.18, 0.27),
        by=ey - rng.uniform(0.2, 0.27), bl=rng.uniform(0.11, 0.16), stroke=rng.uniform(0.045, 0.06),
    )


def _draw_head(pen: _Pen, skin: RGB, mask: _Pen) -> None:
    """Neck, stud and head cylinder in skin colour, and their silhouette on the mask."""
    for name, (x, y) in HEAD_PARTS.items():
        pen.poly(x, y, _mix(skin, (0, 0, 0), 0.15) if name == "neck" else skin)
        mask.poly(x, y, 255)
    # The stud top is seen slightly from above; the gap under the head is in shadow.
    pen.ellipse(0.0, STUD[1] + 0.02, STUD[2] - 0.02, 0.045, fill=_mix(skin, WHITE, 0.18))
    pen.line(np.array([NECK[0] + 0.06, NECK[2] - 0.06]), np.array([BODY[3] + 0.01] * 2), 0.035, _mix(skin, (0, 0, 0), 0.35))


def _draw_eye(pen: _Pen, f: _Face, x: float, kind: str, rng: np.random.Generator) -> None:
    """One eye of kind dots | dots_highlight | open | closed (the wink and angry lids reuse these)."""
    if kind == "closed":
        sign = 1 if rng.random() < 0.6 else -1  # happy ^ arcs are more common than sleepy v ones
        pen.line(x + 1.3 * f.r * _T, f.ey - sign * 0.045 * (1 - _T**2), f.stroke * 0.9, f.ink)
        return
    if kind == "open":
        pen.ellipse(x, f.ey, 1.7 * f.r, 1.2 * f.r, fill=WHITE, outline=f.ink, width=f.stroke * 0.55)
        gx = rng.uniform(-0.4, 0.4) * f.r
        pen.ellipse(x + gx, f.ey + 0.1 * f.r, 0.85 * f.r, 1.0 * f.r, fill=f.ink)
        pen.dot(x + gx - 0.3 * f.r, f.ey - 0.25 * f.r, 0.28 * f.r, WHITE)
        return
    pen.ellipse(x, f.ey, f.r, 1.2 * f.r, fill=f.ink)
    if kind == "dots_highlight":
        pen.dot(x - 0.32 * f.r, f.ey - 0.4 * f.r, 0.36 * f.r, WHITE)


def _draw_eyes(pen: _Pen, f: _Face, kind: str, rng: np.random.Generator) -> None:
    """Both eyes of one FACTORS["eyes"] kind."""
    if kind == "sunglasses":
        shade = _jitter(rng, (28, 28, 36), 0.1)
        if rng.random() < 0.4:  # one-piece visor
            x, y = _rounded_rect(-f.ex - 0.26, f.ey - 0.14, f.ex + 0.26, f.ey + 0.12, 0.1)
            pen.poly(x, y, shade)
        else:
            for s in (-1, 1):
                x = np.concatenate([s * f.ex + 0.21 * _T, s * f.ex + 0.19 * _T[::-1]])
                y = np.concatenate([f.ey - 0.11 + 0.02 * _T**2, f.ey + 0.04 + 0.09 * (1 - _T**2) ** 0.6])
                pen.poly(x, y, shade)
            pen.line(np.array([-f.ex + 0.18, 0, f.ex - 0.18]), f.ey - np.array([0.08, 0.1, 0.08]), f.stroke, shade)
        for s in (-1, 1):  # glossy reflection on each lens
            pen.line(np.array([s * f.ex - 0.1, s * f.ex - 0.03]), np.array([f.ey - 0.02, f.ey - 0.08]), 0.025, (150, 150, 160))
        return
    if kind == "wink":
        open_side = rng.choice([-1, 1])
        for s in (-1, 1):
            _draw_eye(pen, f, s * f.ex, "dots_highlight" if s == open_side else "closed", rng)
        return
    base = {"angry": "dots_highlight" if rng.random() < 0.5 else "dots"}.get(kind, kind)
    for s in (-1, 1):
        _draw_eye(pen, f, s * f.ex, base, rng)
    if kind == "angry":  # a slanted lid cuts the top of each eye, lower towards the nose
        for s in (-1, 1):
            inner, outer = s * (f.ex - 1.6 * f.r), s * (f.ex + 1.6 * f.r)
            lid = np.array([f.ey - 0.15 * f.r, f.ey - 1.1 * f.r])
            pen.poly(np.array([inner, outer, outer, inner]), np.concatenate([lid, lid[::-1] - 2 * f.r]), f.skin)
            pen.line(np.array([inner, outer]), lid, f.stroke * 0.9, f.ink)


def _draw_brows(pen: _Pen, f: _Face, kind: str) -> None:
    """Brows of one FACTORS["brows"] kind in the hair colour; angry ones dip towards the nose."""
    if kind == "none":
        return
    thick = {"thin": 0.022, "thick": 0.05, "angry": 0.042, "worried": 0.034, "unibrow": 0.04}[kind]
    if kind == "unibrow":
        x = (f.ex + f.bl) * _T
        pen.band(x, f.by - 0.04 * (1 - np.abs(_T)) ** 0.5 + 0.03 * _T**2, thick * (1 - 0.4 * _T**4), f.hair)
        return
    for s in (-1, 1):
        inner = (1 - s * _T) / 2  # 1 at the end nearest the nose
        y = f.by - 0.035 * (1 - _T**2)
        y = y + {"angry": 0.1, "worried": -0.08}.get(kind, 0.0) * (inner - 0.5)
        pen.band(s * f.ex + f.bl * _T, y, thick * (0.45 + 0.55 * (1 - _T**2) ** 0.5), f.hair)


def _draw_mouth(pen: _Pen, f: _Face, kind: str, rng: np.random.Generator) -> None:
    """A mouth of one FACTORS["mouth"] kind: a stroke, red lips, or a D-shape with teeth or tongue."""
    x = f.mx + f.mw * _T
    if kind in ("smile", "frown", "smirk", "straight"):
        curve = {"smile": 0.08, "frown": -0.07, "smirk": 0.04, "straight": 0.0}[kind] * rng.uniform(0.7, 1.3)
        tilt = {"smirk": rng.choice([-1, 1]) * 0.06, "straight": rng.uniform(-0.02, 0.02)}.get(kind, 0.0)
        width = 0.75 if kind == "straight" else 1.0
        y = f.my + (0.03 if kind == "frown" else 0.0) + curve * (1 - _T**2) - tilt * _T
        pen.line(f.mx + width * f.mw * _T, y, f.stroke, f.ink)
        return
    if kind == "lipstick":
        lips = _jitter(rng, LIP_RED, 0.08)
        bow = 0.025 * np.abs(np.sin(np.pi * _T))  # cupid's bow dips at the centre
        pen.poly(np.concatenate([x, x[::-1]]), np.concatenate([f.my - 0.05 * (1 - _T**2) + bow, f.my + 0.02 * (1 - _T**2)]), lips)
        pen.poly(np.concatenate([x, x[::-1]]), np.concatenate([f.my + 0.02 * (1 - _T**2), f.my + 0.1 * (1 - _T**2) ** 0.7]), lips)
        pen.line(x, f.my + 0.02 * (1 - _T**2), f.stroke * 0.5, _mix(lips, f.ink, 0.6))
        return
    # grin / open: a D-shaped mouth, flat-ish top and a deep round bottom
    top = f.my - 0.05 + 0.03 * (1 - _T**2)
    bottom = f.my - 0.05 + rng.uniform(0.14, 0.2) * (1 - _T**2) ** 0.7
    outline = (np.concatenate([x, x[::-1]]), np.concatenate([top, bottom[::-1]]))
    pen.poly(*outline, WHITE if kind == "grin" else _mix(f.ink, (90, 20, 20), 0.4))
    if kind == "open":
        pen.ellipse(f.mx, bottom.max() - 0.045, 0.5 * f.mw, 0.05, fill=_jitter(rng, TONGUE, 0.06))
        pen.band(x[2:-2], top[2:-2] + 0.025, np.full(9, 0.018), WHITE)  # upper teeth
    else:
        pen.line(x[2:-2], top[2:-2] + 0.45 * (bottom - top)[2:-2], f.stroke * 0.35, (170, 170, 170))
    pen.line(np.concatenate([outline[0], outline[0][:1]]), np.concatenate([outline[1], outline[1][:1]]), f.stroke * 0.7, f.ink)


def _draw_beard(pen: _Pen, f: _Face, rng: np.random.Generator) -> None:
    """Stubble dots, a printed beard band from the sideburns round the chin, or a shaded lower face."""
    style = rng.choice(["stubble", "band", "shadow"])
    if style == "stubble":
        pts = rng.uniform([-0.88, f.my - 0.22], [0.88, 0.82], size=(150, 2))
        jaw = np.abs(pts[:, 0]) < 0.9 - 0.9 * np.clip(pts[:, 1] - 0.45, 0, 1)  # taper towards the chin
        mouth = (np.abs(pts[:, 0] - f.mx) < f.mw + 0.04) & (np.abs(pts[:, 1] - f.my - 0.05) < 0.14)
        color = _mix(f.hair, f.skin, 0.25)
        for x, y in pts[jaw & ~mouth]:
            pen.dot(x, y, 0.017, color)
        return
    t = np.linspace(0, np.pi, 17)  # a U from one sideburn round the chin to the other
    if style == "band":
        outer_x, outer_y = -0.93 * np.cos(t), f.ey + 0.05 + (0.8 - f.ey) * np.sin(t)
        inner_x, inner_y = -0.76 * np.cos(t), f.ey + 0.12 + (f.my + 0.22 - f.ey - 0.12) * np.sin(t)
        pen.poly(np.concatenate([outer_x, inner_x[::-1]]), np.concatenate([outer_y, inner_y[::-1]]), _mix(f.hair, f.skin, 0.15))
        return
    # shadow: the jaw below the sideburns, rising to just under the nose, following the bevelled bottom
    top_x = 0.96 * np.linspace(-1, 1, 25)
    top_y = f.my - 0.16 + (f.ey - 0.02 - f.my + 0.16) * np.abs(top_x / 0.96) ** 3  # cheeks stay clear
    a = np.linspace(0, np.pi / 2, 7)
    r, bottom = 0.26, BODY[3] - 0.03
    corner_x = np.concatenate([0.96 - r + r * np.cos(a), -0.96 + r - r * np.sin(a)])
    corner_y = np.concatenate([bottom - r + r * np.sin(a), bottom - r + r * np.cos(a)])
    pen.poly(np.concatenate([top_x, corner_x]), np.concatenate([top_y, corner_y]), _mix(f.skin, f.hair, 0.2))


def _draw_extras(pen: _Pen, f: _Face, extras: list[str], rng: np.random.Generator, when: str) -> None:
    """Extras under the features (when='under') or on top of them (when='over')."""
    wrinkle = _mix(f.skin, f.ink, 0.45)
    for name in extras:
        side = rng.choice([-1, 1])
        if when == "under" and name == "beard":
            _draw_beard(pen, f, rng)
        elif when == "under" and name == "blush":
            for s in (-1, 1):
                for k, t in ((1.0, 0.12), (0.65, 0.22)):  # two rings fake a soft edge
                    pen.ellipse(s * 0.58, f.my - 0.14, 0.15 * k, 0.09 * k, fill=_mix(f.skin, BLUSH_PINK, t))
        elif when == "under" and name == "freckles":
            for s in (-1, 1):
                for x, y in rng.normal([s * 0.55, f.ey + 0.25], 0.07, size=(int(rng.integers(3, 7)), 2)):
                    pen.dot(x, y, 0.018, _mix(f.skin, FRECKLE_BROWN, 0.55))
        elif when == "under" and name == "wrinkles":
            for s in (-1, 1):  # crow's feet and cheek folds
                x0 = s * (f.ex + 1.7 * f.r + 0.03)
                for a in (-0.5, 0.0, 0.5):
                    pen.line(np.array([x0, x0 + s * 0.08]), np.array([f.ey, f.ey + 0.08 * a]), 0.016, wrinkle)
                pen.line(s * (0.3 + 0.05 * (_T + 1) / 2), f.my - 0.2 + 0.12 * (_T + 1), 0.016, wrinkle)
            if rng.random() < 0.5:
                for dy in (0.14, 0.22):
                    pen.line(0.25 * _T, f.by - dy + 0.03 * _T**2, 0.016, wrinkle)
        elif when == "under" and name == "scar":
            x0, y0 = side * rng.uniform(0.2, 0.6), f.ey - rng.uniform(0.15, 0.3)
            x1, y1 = x0 + side * rng.uniform(0.0, 0.2), f.ey + rng.uniform(0.2, 0.4)
            color = _mix(f.skin, (110, 40, 30), 0.55)
            pen.line(np.array([x0, x1]), np.array([y0, y1]), 0.025, color)
            for t in (0.3, 0.5, 0.7):  # stitches
                cx, cy = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
                pen.line(np.array([cx - 0.05, cx + 0.05]), np.array([cy, cy]), 0.016, color)
        elif when == "over" and name == "moustache":
            curl = rng.uniform(0.0, 0.12)  # handlebar tips
            y = f.my - 0.11 - 0.02 * (1 - _T**2) + curl * _T**4
            pen.band(f.mx + 1.15 * f.mw * _T, y, 0.055 * (1 - 0.6 * _T**2) + 0.01, f.hair)
        elif when == "over" and name == "glasses":
            frame = _jitter(rng, _mix(f.ink, (90, 90, 96), rng.uniform(0, 1)), 0.05)
            for s in (-1, 1):
                pen.ellipse(s * f.ex, f.ey, 0.19, 0.15, outline=frame, width=0.03)
                pen.line(np.array([s * (f.ex + 0.19), s * 0.95]), np.array([f.ey - 0.02, f.ey - 0.05]), 0.03, frame)
            pen.line(np.array([-f.ex + 0.19, 0, f.ex - 0.19]), np.array([f.ey - 0.02, f.ey - 0.06, f.ey - 0.02]), 0.03, frame)
        elif when == "over" and name == "eyepatch":
            pen.line(np.array([-side * 0.95, side * 0.95]), np.array([f.by - 0.15, f.ey + 0.12]), 0.035, f.ink)
            pen.ellipse(side * f.ex, f.ey + 0.01, 0.17, 0.15, fill=f.ink)
        elif when == "over" and name == "headset":
            gear = _jitter(rng, GEAR_GREY, 0.1)
            x, y = _rounded_rect(side * 0.93 - 0.04, f.ey - 0.06, side * 0.93 + 0.06, f.ey + 0.26, 0.03)
            pen.poly(x, y, gear)
            t = (_T + 1) / 2  # quadratic arm from the ear piece towards the mouth corner
            end = np.array([side * (abs(f.mx) + f.mw + 0.08), f.my + 0.02])
            start, ctrl = np.array([side * 0.92, f.ey + 0.2]), np.array([side * 0.85, f.my + 0.05])
            arm = ((1 - t) ** 2)[:, None] * start + (2 * t * (1 - t))[:, None] * ctrl + (t**2)[:, None] * end
            pen.line(arm[:, 0], arm[:, 1], 0.035, gear)
            pen.ellipse(end[0], end[1], 0.06, 0.045, fill=gear)


@functools.lru_cache(maxsize=16)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres as fractions of the frame, computed once per size (treat as read-only)."""
    c = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.meshgrid(c, c)


def _shade(img: np.ndarray, mask: np.ndarray, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cylinder fall-off and a glossy streak on the head, a soft shadow on the backdrop."""
    # Each part is its own cylinder: normalise x by the half-width of the part at that height.
    half = np.where(y < BODY[1], STUD[2], np.where(y > BODY[3], NECK[2], 1.0))
    u = np.abs(x / half)
    k, p = rng.uniform(0.28, 0.42), rng.uniform(2.2, 3.2)
    shade = (1 - k * u**p) * (1 - 0.2 * np.clip((y - 0.55) / 0.33, 0, 1) ** 2)  # the jaw bevel turns away
    u0, width, gloss = rng.uniform(-0.62, -0.35), rng.uniform(0.06, 0.12), rng.uniform(0.25, 0.55)
    us = x / half
    spec = gloss * (np.exp(-(((us - u0) / width) ** 2)) + 0.35 * np.exp(-(((us + 0.85 * u0) / (1.3 * width)) ** 2)))
    spec = spec * np.clip((0.7 - y) / 0.3, 0, 1) + 0.3 * gloss * np.exp(-(((y + 0.86) / 0.05) ** 2)) * (u < 0.85)
    img = img * (1 + mask * (shade - 1))[..., None]
    img += (mask * spec)[..., None] * (255 - img)
    # Backdrop shadow: a soft rounded square a little below and beside the head.
    sx = (x - rng.uniform(-0.12, 0.12)) / 1.1
    sy = (y - HEAD_CENTRE_Y - rng.uniform(0.05, 0.2)) / 1.28
    d = np.sqrt(np.sqrt(sx**4 + sy**4))
    shadow = rng.uniform(0.08, 0.22) * np.clip((1.35 - d) / 0.45, 0, 1) ** 2
    return img * (1 - (1 - mask) * shadow)[..., None]


def render_face(index: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Render face `index` of the set `seed` as an (size, size, 3) uint8 RGB array, plus its factor labels."""
    rng = np.random.default_rng([seed, index])
    labels = _sample_labels(rng)
    f = _sample_face(rng, labels)
    pose = labels["pose"]
    unit = UNIT * pose["scale"]  # head units -> frame fraction
    angle = math.radians(pose["angle"])
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    origin = np.array([0.5 + pose["dx"], 0.5 + pose["dy"]]) - unit * rot @ np.array([0.0, HEAD_CENTRE_Y])

    big = size * SUPERSAMPLE
    backdrop = _jitter(rng, BACKDROPS[labels["backdrop"]][1], 0.015)
    canvas, silhouette = Image.new("RGB", (big, big), backdrop), Image.new("L", (big, big), 0)
    pen = _Pen(ImageDraw.Draw(canvas), origin * big, unit * big, rot)
    mask_pen = _Pen(ImageDraw.Draw(silhouette), origin * big, unit * big, rot)
    _draw_head(pen, f.skin, mask_pen)
    _draw_extras(pen, f, labels["extras"], rng, "under")
    _draw_mouth(pen, f, labels["mouth"], rng)
    _draw_eyes(pen, f, labels["eyes"], rng)
    _draw_brows(pen, f, labels["brows"])
    _draw_extras(pen, f, labels["extras"], rng, "over")

    img = np.asarray(canvas.reduce(SUPERSAMPLE), dtype=np.float32)
    mask = np.asarray(silhouette.reduce(SUPERSAMPLE), dtype=np.float32) / 255.0
    gx, gy = _grid(size)
    dx, dy = gx - origin[0], gy - origin[1]
    x = (rot[0, 0] * dx + rot[1, 0] * dy) / unit  # inverse pose: frame -> head units
    y = (rot[0, 1] * dx + rot[1, 1] * dy) / unit
    img = _shade(img, mask, x, y, rng)
    # Camera: exposure, contrast and white balance of a product photo, sensor noise, then JPEG.
    img = (img - 128) * rng.uniform(0.92, 1.08) + 128 + rng.uniform(-8, 8)
    img = img * rng.uniform(0.985, 1.015, 3)
    quality = int(rng.integers(75, 91))
    noise = np.random.default_rng([seed, index, 1])  # own stream: its draw count depends on size
    img += noise.normal(0, 1.2, img.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB")), labels


def render_faces(n: int, size: int = 64, seed: int = 0, start: int = 0) -> tuple[np.ndarray, list[dict]]:
    """Render faces start..start+n-1 as an (n, size, size, 3) uint8 array and their labels."""
    faces = [render_face(start + i, size=size, seed=seed) for i in range(n)]
    pixels = np.array([face for face, _ in faces], np.uint8).reshape(n, size, size, 3)
    return pixels, [label for _, label in faces]


def preview(path, size: int = 128, seed: int = 0, grid: int = 8) -> Path:
    """Write a grid×grid PNG of faces 0..grid²-1 to path (parent folders created) and return the path."""
    return save_sheet(render_faces(grid * grid, size=size, seed=seed)[0], grid, path)


def main(argv: list[str] | None = None) -> None:
    """CLI: write a preview sheet of synthetic faces."""
    preview_main(__doc__.splitlines()[0], preview, argv)


if __name__ == "__main__":
    main()
