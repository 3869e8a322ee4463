"""The calibrated decoder (model.likelihood=calibrated; Rybkin, Daniilidis & Levine 2021, "Simple and Effective
VAE Training with Calibrated Decoders"): the seed's Gaussian with its one shared sigma learnt.

recon is the Gaussian negative log-likelihood in nats. In training sigma^2 is the batch's mean squared error (its
optimum, the sigma-VAE), log sigma floored at model.log_sigma_min; in evaluation it is the running value, an
exponential moving average with weight model.sigma_momentum kept as the VAE's buffer `log_sigma` (so checkpoints
hold it).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lego_vae.model.likelihoods.fixed import Fixed
from lego_vae.model.losses import calibrated_vae_loss, optimal_log_sigma


class Calibrated(Fixed):
    """The fixed decoder's Gaussian at a learnt sigma instead of sqrt(1/2). (A subclass of Fixed, so Fixed is
    registered first, as the config's error lists them: "fixed, calibrated".)"""

    name = "calibrated"

    def __init__(self, log_sigma_min: float, sigma_momentum: float) -> None:
        self.log_sigma_min, self.sigma_momentum = float(log_sigma_min), float(sigma_momentum)

    def attach(self, vae: nn.Module) -> None:
        super().attach(vae)
        # NaN until the first training batch sets it (a resumed run loads its value from the checkpoint).
        vae.register_buffer("log_sigma", torch.full((), math.nan))

    def log_sigma(self) -> float:
        return float(self.vae.log_sigma)

    def loss(self, x_hat: Tensor, x: Tensor, mu: Tensor, logvar: Tensor, beta: float = 1.0,
             training: bool = False) -> dict[str, Tensor]:
        """The Gaussian NLL + beta * KL at the batch's optimal sigma in training (updating the running one),
        at the running sigma else; the terms include that log_sigma."""
        running = self.vae.log_sigma
        if not training:
            return calibrated_vae_loss(x_hat, x, mu, logvar, running, beta)
        log_sigma = optimal_log_sigma(x_hat, x, self.log_sigma_min)
        with torch.no_grad():  # the running sigma^2: an exponential moving average of the batches' MSE
            # NaN: not trained yet. torch.where, not a Python `if`, so the step never waits for the device.
            before = torch.where(torch.isnan(running), log_sigma, running)
            mixed = (1 - self.sigma_momentum) * (2 * before).exp() + self.sigma_momentum * (2 * log_sigma).exp()
            running.copy_(0.5 * mixed.log())
        return calibrated_vae_loss(x_hat, x, mu, logvar, log_sigma, beta)

    def metrics(self) -> dict:
        """The fixed decoder's, and test_log_sigma: the running log sigma every test image is scored at."""
        return {**super().metrics(), "test_log_sigma": self.log_sigma()}
