"""The VAE's loss terms, per image and batch-averaged: the seed's sum of squared errors (vae_loss), a Gaussian
decoder's negative log-likelihood at a shared sigma and its batch optimum (Rybkin, Daniilidis & Levine 2021,
"Simple and Effective VAE Training with Calibrated Decoders"), and the KL divergence."""

from __future__ import annotations

import math

from torch import Tensor

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per image, (B,): -1/2 sum(1 + logvar - mu^2 - exp(logvar)) (Kingma & Welling, App. B)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)


def squared_error(x_hat: Tensor, x: Tensor) -> Tensor:
    """Sum of squared pixel errors per image, (B,)."""
    return (x_hat - x).pow(2).flatten(1).sum(dim=1)


def optimal_log_sigma(x_hat: Tensor, x: Tensor, floor: float) -> Tensor:
    """log sigma of the shared variance that maximises the batch's likelihood: sigma^2 = MSE, log sigma >= floor."""
    return 0.5 * (x_hat - x).pow(2).mean().log().clamp(min=2 * floor)


def vae_loss(x_hat: Tensor, x: Tensor, mu: Tensor, logvar: Tensor, beta: float = 1.0) -> dict[str, Tensor]:
    """The seed's loss = MSE + beta * KLD, both summed per image (pixels in [0, 1]) and averaged over the batch."""
    recon = squared_error(x_hat, x).mean()
    kl = kl_divergence(mu, logvar).mean()
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl}


def calibrated_vae_loss(x_hat: Tensor, x: Tensor, mu: Tensor, logvar: Tensor, log_sigma: Tensor,
                        beta: float = 1.0) -> dict[str, Tensor]:
    """loss = Gaussian NLL at the shared log_sigma + beta * KLD (per image, batch mean), with log_sigma among the terms.

    NLL = D (log sigma + 1/2 log 2 pi) + sum (x - x_hat)^2 / (2 sigma^2) per image.
    """
    nll = x[0].numel() * (log_sigma + HALF_LOG_2PI) + squared_error(x_hat, x) * 0.5 * (-2 * log_sigma).exp()
    recon = nll.mean()
    kl = kl_divergence(mu, logvar).mean()
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl, "log_sigma": log_sigma.detach()}
