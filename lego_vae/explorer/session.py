"""What the face explorer computes, without any web framework: samples, morphs, steering, reconstructions.

Every face is a (3, S, S) float tensor in [0, 1] at the checkpoint's image size; the app makes pictures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from lego_vae.config.choices import PRIORS
from lego_vae.config.schema import TrainConfig
from lego_vae.data.datamodule import LegoFacesDataModule
from lego_vae.data.images import (
    IMAGE_SUFFIXES,
    TooLargeImageError,
    UnreadableImageError,
    load_image,
    open_image,
)
from lego_vae.errors import UserError
from lego_vae.model.checkpoints import checkpoint_file, chosen_prior
from lego_vae.model.inference import kl_per_dim
from lego_vae.model.interpolation import interpolate_latents
from lego_vae.model.prior import sample_latents
from lego_vae.model.vae import VAE
from lego_vae.runs import load_model

MORPH_RESOLUTION = 100  # the morph slider's t is taken on this many intervals of the path


def read_upload(path: str | Path, size: int, max_pixels: int) -> Tensor:
    """One uploaded image as (3, size, size) floats in [0, 1]; a one-line UserError for anything unreadable.
    One over max_pixels is refused from its header, so a 20000 x 20000 PNG of zeros cannot take the memory."""
    path, name = Path(path), Path(path).name
    if not path.is_file():
        raise UserError(f"'{name}': no such file")
    if path.stat().st_size == 0:
        raise UserError(f"'{name}' is empty (0 bytes)")
    try:
        with open_image(path, max_pixels, "max_pixels"):
            pass  # the header only: a file that is no image, or too large, is told apart from a damaged one
    except TooLargeImageError as err:
        raise UserError(f"'{name}' is {err.reason()}") from None
    except UnreadableImageError:
        kinds = " ".join(IMAGE_SUFFIXES)
        raise UserError(f"'{name}' is not an image the explorer can read (it reads {kinds})") from None
    try:
        pixels = load_image(path, size, max_pixels, "max_pixels")
    except UnreadableImageError as err:  # truncated or corrupt; name the upload, not the server's temp path
        reason = " ".join(str(err.__cause__ or err).split())
        raise UserError(f"'{name}' cannot be read: {reason}") from None
    return torch.from_numpy(pixels).permute(2, 0, 1).float() / 255


@dataclass(frozen=True)
class Face:
    """A face to morph or steer: the picture it came from (3, S, S) and its posterior mean (latent,)."""

    image: Tensor
    mu: Tensor
    label: str


class Explorer:
    """A checkpoint's VAE with its test faces, latent dimensions ranked by KL, and optional GMM prior.

    The faces to pick from (gallery, test_face) are the test faces, then `more` held-out ones (from_checkpoint
    adds the validation faces where the test split has fewer than two: Morph needs two faces).
    """

    def __init__(self, vae: VAE, config: TrainConfig, test: Tensor, prior=None, max_pixels: int = 40_000_000,
                 label: str = "", more: Tensor | None = None) -> None:
        self.vae, self.config, self.prior, self.max_pixels, self.label = vae, config, prior, max_pixels, label
        self.device = next(vae.parameters()).device
        self.size, self.latent = int(config.data.image_size), int(config.model.latent)
        self.test = test  # (N, 3, S, S) uint8 on the CPU
        more = more if more is not None else test[:0]
        self.faces = torch.cat([test, more])  # (N + M, 3, S, S) uint8: the faces offered to pick from
        self.face_labels = [f"test face {i}" for i in range(len(test))] + [f"val face {i}" for i in range(len(more))]
        # (latent,) mean KL per dimension over the test faces; ranked most used first, like traversal.png
        self.kl = kl_per_dim(vae, test) if len(test) else torch.zeros(self.latent)
        self.ranked = self.kl.argsort(descending=True).tolist()

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", max_pixels: int = 40_000_000) -> Explorer:
        """Load a checkpoint (weights_only) or a run or study folder's; a wrong path is a one-line UserError."""
        ckpt = checkpoint_file(path)
        vae, config, prior = load_model(ckpt, device)  # prior: None unless trained with sample.prior=gmm
        datamodule = LegoFacesDataModule.ready(config.data)
        test = datamodule.split_images("test")
        more = datamodule.held_out("test", at_least=2)[0][len(test):]  # validation faces where test has one
        return cls(vae, config, test, prior, max_pixels, label=str(ckpt), more=more)

    @torch.no_grad()
    def face(self, image: Tensor, label: str) -> Face:
        """The Face of an image (3, S, S) in [0, 1]."""
        mu = self.vae.encode(image[None].to(self.device))[0][0]
        return Face(image=image.cpu(), mu=mu, label=label)

    def test_face(self, index: int) -> Face:
        """Face number index of those offered (self.faces: the test faces, then any others; wrapped into range)."""
        if not len(self.faces):
            raise UserError("this checkpoint's data has no test faces; upload an image instead")
        index = int(index) % len(self.faces)
        return self.face(self.faces[index].float() / 255, self.face_labels[index])

    def upload_face(self, path: str | Path) -> Face:
        """The Face of an uploaded file (a UserError says why one cannot be read)."""
        return self.face(read_upload(path, self.size, self.max_pixels), Path(path).name)

    def gallery(self, n: int) -> list[Tensor]:
        """The first n faces offered (3, S, S) in [0, 1], to pick from: test faces, then any others."""
        return [x.float() / 255 for x in self.faces[:n]]

    @torch.no_grad()
    def sample(self, n: int, seed: int, temperature: float, prior: str = "normal") -> Tensor:
        """(n, 3, S, S) new faces from N(0, temperature^2 I) or the fitted GMM at that temperature."""
        if prior not in PRIORS:
            raise UserError(f"prior={prior!r}: choose one of {', '.join(PRIORS)}")
        if temperature <= 0:
            raise UserError(f"temperature={temperature}: must be > 0")
        generator = torch.Generator().manual_seed(int(seed))
        z = sample_latents(self.latent, n, chosen_prior(prior, self.prior, self.label), temperature, generator)
        return self.vae.decode(z.to(self.device))

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """One face (3, S, S) from one latent (latent,)."""
        return self.vae.decode(z[None].to(self.device))[0]

    def morph_latent(self, a: Face, b: Face, t: float, mode: str = "linear") -> Tensor:
        """The latent at fraction t in [0, 1] of the path from a to b (linear or slerp), on a grid of 1/100."""
        path = interpolate_latents(a.mu, b.mu, MORPH_RESOLUTION + 1, mode)
        return path[round(min(max(float(t), 0.0), 1.0) * MORPH_RESOLUTION)]

    def morph_strip(self, a: Face, b: Face, steps: int, mode: str = "linear") -> Tensor:
        """(steps, 3, S, S) faces along the path from a to b."""
        return self.vae.interpolate(a.image.to(self.device), b.image.to(self.device), steps, mode)

    def steer_dims(self, n: int) -> list[int]:
        """The n most active latent dimensions (by mean KL over the test faces)."""
        return self.ranked[:n]

    def steer(self, face: Face, dims: list[int], offsets: list[float]) -> Tensor:
        """The face (3, S, S) decoded with offsets added to its mean in dims; all zero is its reconstruction."""
        z = face.mu.clone()
        z[dims] += torch.tensor([float(v) for v in offsets], device=z.device, dtype=z.dtype)
        return self.decode(z)

    @torch.no_grad()
    def reconstruct(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Reconstructions (N, 3, S, S) of images in [0, 1] and each one's sum of squared pixel errors (N,)."""
        x = images.to(self.device)
        recon = self.vae.reconstruct(x)
        return recon, (recon - x).pow(2).flatten(1).sum(1)  # the training loss's recon term, per image
