"""The plain-torch VAE: one Gaussian latent between an architecture's nets (each a subclass in its own file of
lego_vae/model/archs, registered under its `name`), its decoder density a Likelihood."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from lego_vae.model.interpolation import interpolate_latents
from lego_vae.model.likelihood import Likelihood
from lego_vae.model.prior import GaussianMixturePrior, sample_latents


class VAE(nn.Module):
    """A VAE for square RGB images in [0, 1]: features -> encoder_fc -> (mu, logvar) -> z -> decoder_fc -> unfeatures.

    A subclass sets `name` (which registers it) and builds `features` (B, 3, S, S) -> (B, *feature_shape) and
    `unfeatures` (B, *feature_shape) -> images in [0, 1], with fc_out an activation after decoder_fc. The attribute
    names are the state_dict keys of every checkpoint (docs/extending.md).
    """

    name: ClassVar[str]  # the model.arch value that builds this class; set by each architecture
    registry: ClassVar[dict[str, type[VAE]]] = {}  # name -> class, in the order the classes were defined
    channels_last: ClassVar[bool] = False  # whether model.channels_last applies (channels-last memory speeds it up)

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            VAE.registry[cls.name] = cls

    @classmethod
    def refusal(cls, image_size: int, **options) -> str | None:
        """Why this architecture cannot be built at image_size with these model options (one line naming the
        config keys, for the config check), or None."""
        return None

    def __init__(self, image_size: int, hidden: int, latent: int, likelihood: Likelihood, features: nn.Module,
                 unfeatures: nn.Module, feature_shape: tuple[int, ...], fc_out: nn.Module | None = None) -> None:
        super().__init__()
        self.image_size, self.hidden, self.latent, self.feature_shape = image_size, hidden, latent, feature_shape
        self.likelihood = likelihood
        likelihood.attach(self)  # before the nets: its buffers (log_sigma) come first in the state_dict, as before
        self.features, self.unfeatures = features, unfeatures
        flat = int(torch.tensor(feature_shape).prod())
        self.encoder_fc = nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU())
        self.mu, self.logvar = nn.Linear(hidden, latent), nn.Linear(hidden, latent)
        self.decoder_fc = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, flat))
        if fc_out is not None:
            self.decoder_fc.append(fc_out)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior parameters (mu, logvar), each (B, latent), of images x (B, 3, S, S)."""
        h = self.encoder_fc(self.features(x))  # (B, hidden)
        return self.mu(h), self.logvar(h)

    def decode(self, z: Tensor) -> Tensor:
        """Images (B, 3, S, S) in [0, 1] from latents z (B, latent)."""
        return self.unfeatures(self.decoder_fc(z).view(z.shape[0], *self.feature_shape))

    @staticmethod
    def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I), so gradients flow through mu and sigma."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(reconstruction, mu, logvar) of images x, decoding one posterior sample per image."""
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None,
               prior: GaussianMixturePrior | None = None) -> Tensor:
        """n new faces (n, 3, S, S): z from the fitted prior if given, else N(0, temperature^2 I), drawn on the
        CPU (the same faces on any device for one generator), decoded."""
        device = next(self.parameters()).device
        return self.decode(sample_latents(self.latent, n, prior, temperature, generator).to(device))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Deterministic reconstructions: decode the posterior means of x."""
        return self.decode(self.encode(x)[0])

    @torch.no_grad()
    def interpolate(self, x_a: Tensor, x_b: Tensor, steps: int = 10, mode: str = "linear") -> Tensor:
        """Faces (steps, 3, S, S) decoded from interpolate_latents between the posterior means of images x_a and
        x_b (3, S, S) in [0, 1]. Raises ValueError for an unknown mode."""
        mu_a = self.encode(x_a.reshape(1, *x_a.shape[-3:]))[0][0]
        mu_b = self.encode(x_b.reshape(1, *x_b.shape[-3:]))[0][0]
        return self.decode(interpolate_latents(mu_a, mu_b, steps, mode))
