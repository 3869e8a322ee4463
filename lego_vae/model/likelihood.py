"""The decoder's density p(x | z): the interface each likelihood of lego_vae/model/likelihoods implements.

A Likelihood owns its decoder's training loss (`loss`), the sigma it scores images at (`log_sigma`), and what
it adds to the test metrics (`log_prob` for the IWAE bound, `metrics`). Any state it keeps is a buffer of the
VAE it is attached to, so the VAE's state_dict saves it.
"""

from __future__ import annotations

import math
from typing import ClassVar

from torch import Tensor, nn

from lego_vae.model.losses import HALF_LOG_2PI, squared_error


class Likelihood:
    """A Gaussian decoder with one sigma shared by all pixels; a subclass sets `name` (which registers it,
    the config's model.likelihood) and says how sigma is found and what the loss is.

    Its constructor takes the model options it uses (model.log_sigma_min, ...) as keyword arguments.
    """

    name: ClassVar[str]
    registry: ClassVar[dict[str, type[Likelihood]]] = {}  # name -> class, in the order the classes were defined

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            Likelihood.registry[cls.name] = cls

    def attach(self, vae: nn.Module) -> None:
        """Called once by the VAE it decodes for: keep the VAE, register the state it saves (none here)."""
        self.vae = vae

    def log_sigma(self) -> float:
        """log of the sigma every image is scored at in evaluation."""
        raise NotImplementedError

    def loss(self, x_hat: Tensor, x: Tensor, mu: Tensor, logvar: Tensor, beta: float = 1.0,
             training: bool = False) -> dict[str, Tensor]:
        """{"loss": recon + beta * kl, "recon", "kl", and any term to log}, batch means of per-image sums;
        training: the batch is a training batch (a calibrated decoder learns its sigma from it)."""
        raise NotImplementedError

    def log_prob(self, x_hat: Tensor, x: Tensor) -> Tensor:
        """log N(x; x_hat, sigma^2 I) per image at log_sigma(), (B,) float64:
        -(D (log sigma + 1/2 log 2 pi) + sum (x - x_hat)^2 / (2 sigma^2))."""
        # In float64: the constant is thousands of nats, the differences that matter small.
        log_sigma = float(self.log_sigma())
        sse = squared_error(x_hat, x).double()
        return -(x[0].numel() * (log_sigma + HALF_LOG_2PI) + sse * 0.5 * math.exp(-2 * log_sigma))

    def metrics(self) -> dict:
        """What metrics.json says of the decoder: its name and sigma per pixel (decoder_sigma)."""
        return {"likelihood": self.name, "decoder_sigma": math.exp(self.log_sigma())}
