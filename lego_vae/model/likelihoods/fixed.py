"""The seed's decoder (model.likelihood=fixed): a Gaussian with sigma^2 = 1/2 per pixel, trained on the sum of
squared errors, which is its negative log-likelihood less the constant (D/2) log(pi)."""

from __future__ import annotations

import math

from torch import Tensor

from lego_vae.model.likelihood import Likelihood
from lego_vae.model.losses import vae_loss


class Fixed(Likelihood):
    name = "fixed"
    LOG_SIGMA = 0.5 * math.log(0.5)  # the seed's MSE is a Gaussian with sigma^2 = 1/2

    def log_sigma(self) -> float:
        return self.LOG_SIGMA

    def loss(self, x_hat: Tensor, x: Tensor, mu: Tensor, logvar: Tensor, beta: float = 1.0,
             training: bool = False) -> dict[str, Tensor]:
        """The seed's loss, the same in training and evaluation: sum (x_hat - x)^2 + beta * KL (losses.vae_loss)."""
        return vae_loss(x_hat, x, mu, logvar, beta)
