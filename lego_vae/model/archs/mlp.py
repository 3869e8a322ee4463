"""The seed's model (model.arch=mlp): fully connected encoder and decoder with `hidden` neurons."""

from __future__ import annotations

from torch import nn

from lego_vae.model.archs.blocks import IMAGE_CHANNELS
from lego_vae.model.likelihood import Likelihood
from lego_vae.model.vae import VAE


class MLP(VAE):
    """The image itself is the feature map: the fully connected layers read it and write it (through a sigmoid)."""

    name = "mlp"

    def __init__(self, image_size: int, *, hidden: int, latent: int, likelihood: Likelihood) -> None:
        # The sigmoid holds no parameters: in unfeatures, the keys of the seed's checkpoints are unchanged.
        super().__init__(image_size, hidden, latent, likelihood, nn.Identity(), nn.Sigmoid(),
                         (IMAGE_CHANNELS, image_size, image_size))
