"""Running a network over many images: the device, eval mode under no_grad, float batches in [0, 1], the posterior."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


def device_for(accelerator: str = "auto") -> str:
    """The device a trainer.accelerator setting runs a model on: "cuda" where it allows one and one exists."""
    return "cuda" if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else "cpu"


@contextmanager
def evaluating(module: nn.Module) -> Iterator[torch.device]:
    """Eval mode and no_grad for the block, yielding the VAE's device; the previous mode comes back after."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield next(module.parameters()).device
    finally:
        module.train(was_training)


def float_batches(images: Tensor, batch_size: int, device: torch.device | str = "cpu") -> Iterator[Tensor]:
    """Float batches in [0, 1] on device."""
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device)
        yield x.float() / 255 if x.dtype == torch.uint8 else x.float()


def posterior(vae: nn.Module, images: Tensor, batch_size: int = 256) -> tuple[Tensor, Tensor]:
    """(mu, logvar) of q(z|x) for every image, each (N, latent), float64 on the CPU; raises nothing of its own."""
    with evaluating(vae) as device:
        parts = [vae.encode(x) for x in float_batches(images, batch_size, device)]
    mu, logvar = zip(*parts) if parts else ([torch.zeros(0, vae.latent)], [torch.zeros(0, vae.latent)])
    return torch.cat(mu).cpu().double(), torch.cat(logvar).cpu().double()


def kl_per_dim(vae: nn.Module, images: Tensor, batch_size: int = 256) -> Tensor:
    """Mean KL of each latent dimension over the images, shape (latent,): ranks dimensions by how much they are used."""
    mu, logvar = posterior(vae, images, batch_size)
    # KL(N(mu_d, sigma_d^2) || N(0, 1)) = -1/2 (1 + logvar_d - mu_d^2 - exp(logvar_d)), per dimension
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).mean(dim=0).float()
