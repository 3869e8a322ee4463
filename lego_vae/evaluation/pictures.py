"""Writing faces to PNG grids, morph strips and GIFs."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torchvision.utils import make_grid, save_image

from lego_vae.evaluation.metrics import kl_per_dim
from lego_vae.files import replacing
from lego_vae.model.prior import sample_latents


def save_grid(images: Tensor, path: Path, nrow: int) -> Path:
    """Save images (N, 3, S, S) in [0, 1] as a PNG grid with nrow images per row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, keep_suffix=True) as tmp:  # whole or not at all: never a half picture over a good one
        save_image(images.detach().float().cpu().clamp(0, 1), tmp, nrow=nrow, padding=2, pad_value=1.0)
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


@torch.no_grad()
def traversal(vae: torch.nn.Module, face: Tensor, dims: list[int], steps: int, span: float) -> Tensor:
    """(len(dims), steps, 3, S, S): one row per latent dimension, set from -span to +span around face's mean."""
    mu = vae.encode(face[None])[0][0]
    values = torch.linspace(-span, span, steps, device=mu.device)
    rows = []
    for d in dims:
        z = mu.repeat(steps, 1)
        z[:, d] = values
        rows.append(vae.decode(z))
    return torch.stack(rows)


@torch.no_grad()
def write_run_pictures(vae: torch.nn.Module, datamodule, run_dir: Path, grid: int = 8, steps: int = 10,
                       seed: int = 0, prior=None) -> list[Path]:
    """samples.png (grid x grid, from the fitted prior if given), reconstructions.png (inputs above outputs),
    morph.png, morph.gif (between two held-out faces: datamodule.held_out("test")), traversal.png."""
    was_training = vae.training
    vae.eval()
    device = next(vae.parameters()).device
    test = datamodule.split_images("test").to(device).float() / 255  # (N, 3, S, S)
    z = sample_latents(vae.latent, grid * grid, prior, generator=torch.Generator().manual_seed(seed))
    samples = vae.decode(z.to(device))
    inputs = test[:grid]
    recon = vae.reconstruct(inputs)
    # Two test faces; with one (the smallest data sets), the test face and a validation face.
    ends = datamodule.held_out("test", at_least=2)[0][:2].to(device).float() / 255
    morph = vae.interpolate(ends[0], ends[-1], steps)
    # The most used latent dimensions (by mean KL over the test faces), one row each.
    dims = kl_per_dim(vae, datamodule.split_images("test")).argsort(descending=True)[:grid].tolist()
    rows = traversal(vae, test[0], dims, steps, span=3.0)
    vae.train(was_training)
    return [
        save_grid(samples, run_dir / "samples.png", nrow=grid),
        save_grid(torch.cat([inputs, recon]), run_dir / "reconstructions.png", nrow=len(inputs)),
        save_grid(morph, run_dir / "morph.png", nrow=steps),
        save_gif(morph, run_dir / "morph.gif"),  # native pixels, like the PNGs: report.html blows them all up alike
        save_grid(rows.flatten(0, 1), run_dir / "traversal.png", nrow=steps),
    ]
