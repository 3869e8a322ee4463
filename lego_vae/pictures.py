"""Faces (float tensors in [0, 1]) as pictures: PNG grids and GIFs written whole, PIL images, TensorBoard grids."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid, save_image

from lego_vae.files import replacing


def save_grid(images: Tensor, path: Path, nrow: int) -> Path:
    """Save images (N, 3, S, S) in [0, 1] as a PNG grid with nrow images per row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, keep_suffix=True) as tmp:  # whole or not at all: never a half picture over a good one
        save_image(grid_tensor(images, nrow), tmp)
    return path


def to_pil(image: Tensor) -> Image.Image:
    """One image (3, S, S) in [0, 1] as a PIL RGB image."""
    array = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(array, "RGB")


def save_gif(frames: Tensor, path: Path, frame_ms: int = 120, scale: int = 1) -> Path:
    """Save frames (T, 3, S, S) as a looping GIF that plays there and back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sequence = [*frames, *frames.flip(0)[1:-1]]  # a, ..., b, ..., back to just after a
    images = [to_pil(f) for f in sequence]
    if scale > 1:
        images = [im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST) for im in images]
    with replacing(path, keep_suffix=True) as tmp:
        images[0].save(tmp, save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    return path


def grid_tensor(images: Tensor, nrow: int) -> Tensor:
    """A (3, H, W) grid of images, for TensorBoard."""
    return make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
