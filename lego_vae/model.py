"""The plain-torch VAE (no Lightning here) and its loss."""

from __future__ import annotations

import torch
from torch import Tensor, nn

IMAGE_CHANNELS = 3
MIN_FEATURE_SIZE = 4  # the conv encoder halves the image until it is this small (or odd)


def vae_loss(x_hat: Tensor, x: Tensor, mu: Tensor, logvar: Tensor, beta: float = 1.0) -> dict[str, Tensor]:
    """Loss = MSE + beta * KLD, both summed per image and averaged over the batch.

    recon = sum over pixels of (x_hat - x)^2, with pixel values in [0, 1];
    kl    = KL(N(mu, sigma^2) || N(0, I)) = -0.5 * sum(1 + logvar - mu^2 - exp(logvar))
            (Kingma & Welling 2014, Appendix B), summed over latent dimensions.
    """
    recon = (x_hat - x).pow(2).flatten(1).sum(dim=1).mean()
    kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()
    return {"loss": recon + beta * kl, "recon": recon, "kl": kl}


def conv_stages(image_size: int) -> int:
    """How many stride-2 stages take image_size down to about MIN_FEATURE_SIZE."""
    stages, size = 0, image_size
    while size > MIN_FEATURE_SIZE and size % 2 == 0:
        size //= 2
        stages += 1
    return stages


class VAE(nn.Module):
    """A VAE for square RGB images in [0, 1]: encoder -> (mu, logvar) -> z = mu + sigma * eps -> decoder.

    arch="mlp" is the seed's fully connected model; arch="conv" puts strided convolutions before
    and transposed convolutions after the same fully connected `hidden` layer.
    """

    def __init__(
        self,
        image_size: int,
        hidden: int = 512,
        latent: int = 32,
        arch: str = "conv",
        channels: int = 32,
        max_channels: int = 256,
    ) -> None:
        super().__init__()
        self.image_size, self.hidden, self.latent, self.arch = image_size, hidden, latent, arch
        if arch == "mlp":
            self.feature_shape: tuple[int, ...] = (IMAGE_CHANNELS, image_size, image_size)
            self.features = nn.Identity()
            self.unfeatures: nn.Module = nn.Identity()
        elif arch == "conv":
            stages = conv_stages(image_size)
            widths = [min(channels * 2**i, max_channels) for i in range(stages)]
            size = image_size // 2**stages
            self.feature_shape = (widths[-1] if widths else IMAGE_CHANNELS, size, size)
            down: list[nn.Module] = []
            for c_in, c_out in zip([IMAGE_CHANNELS, *widths[:-1]], widths):
                down += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]
            self.features = nn.Sequential(*down)
            up: list[nn.Module] = []
            for c_in, c_out in zip(widths[::-1], [*widths[::-1][1:], widths[0] if widths else IMAGE_CHANNELS]):
                up += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]
            # A final 3x3 conv maps features to RGB at full resolution.
            up.append(nn.Conv2d(widths[0] if widths else IMAGE_CHANNELS, IMAGE_CHANNELS, 3, padding=1))
            self.unfeatures = nn.Sequential(*up)
        else:
            raise ValueError(f"unknown arch {arch!r}")
        flat = int(torch.tensor(self.feature_shape).prod())
        self.encoder_fc = nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, latent)
        self.logvar = nn.Linear(hidden, latent)
        self.decoder_fc = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, flat))
        # mlp: the fully connected output is the image; conv: features for the transposed convs.
        self.decoder_fc.append(nn.Sigmoid() if arch == "mlp" else nn.LeakyReLU(0.2))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior parameters (mu, logvar), each (B, latent), of images x (B, 3, S, S)."""
        h = self.encoder_fc(self.features(x))  # (B, hidden)
        return self.mu(h), self.logvar(h)

    def decode(self, z: Tensor) -> Tensor:
        """Images (B, 3, S, S) in [0, 1] from latents z (B, latent)."""
        h = self.decoder_fc(z).view(z.shape[0], *self.feature_shape)
        out = self.unfeatures(h)
        return out if self.arch == "mlp" else torch.sigmoid(out)

    @staticmethod
    def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I), so gradients flow through mu and sigma."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(reconstruction, mu, logvar) of images x, decoding one posterior sample per image."""
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """n new faces decoded from z ~ N(0, temperature^2 I)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent, generator=generator, device="cpu").to(device) * temperature
        return self.decode(z)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Deterministic reconstructions: decode the posterior means of x."""
        return self.decode(self.encode(x)[0])

    @torch.no_grad()
    def interpolate(self, x_a: Tensor, x_b: Tensor, steps: int = 10, mode: str = "linear") -> Tensor:
        """Faces (steps, 3, S, S) between the posterior means of images x_a and x_b (linear or slerp)."""
        mu_a = self.encode(x_a.reshape(1, *x_a.shape[-3:]))[0][0]
        mu_b = self.encode(x_b.reshape(1, *x_b.shape[-3:]))[0][0]
        return self.decode(interpolate_latents(mu_a, mu_b, steps, mode))


def interpolate_latents(a: Tensor, b: Tensor, steps: int, mode: str = "linear") -> Tensor:
    """steps latents (steps, latent) from a to b: straight (linear) or along the great circle (slerp).

    slerp(t) = sin((1-t)w)/sin(w) a + sin(t w)/sin(w) b, w the angle between a and b (White 2016,
    "Sampling generative networks"); it keeps the norm typical of N(0, I) samples along the path.
    """
    t = torch.linspace(0, 1, steps, device=a.device, dtype=a.dtype).unsqueeze(1)  # (steps, 1)
    if mode == "slerp":
        cos = torch.dot(a / a.norm(), b / b.norm()).clamp(-1, 1)
        omega = torch.arccos(cos)
        if omega.abs() > 1e-4:  # (nearly) parallel vectors: slerp is the straight line
            return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)
    elif mode != "linear":
        raise ValueError(f"unknown interpolation mode {mode!r}")
    return (1 - t) * a + t * b


def build_vae(config: dict) -> VAE:
    """The VAE that a run's config describes (its model section and data.image_size)."""
    model = config["model"]
    return VAE(
        image_size=config["data"]["image_size"],
        hidden=model["hidden"],
        latent=model["latent"],
        arch=model["arch"],
        channels=model.get("channels", 32),
        max_channels=model.get("max_channels", 256),
    )
