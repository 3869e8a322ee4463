"""The plain-torch VAE (no Lightning here): mlp, conv and resconv encoders/decoders around one Gaussian latent."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lego_vae.config.choices import LIKELIHOODS
from lego_vae.model.interpolation import interpolate_latents

IMAGE_CHANNELS = 3
FEATURE_SIZE = 4  # the conv encoder halves the image until it is this small (or odd): the seed-era net


def conv_stages(image_size: int, feature_size: int = FEATURE_SIZE) -> int:
    """How many stride-2 stages take image_size down to feature_size (fewer where it turns odd first)."""
    stages, size = 0, image_size
    while size > feature_size and size % 2 == 0:
        size //= 2
        stages += 1
    return stages


def conv_widths(image_size: int, channels: int, max_channels: int, feature_size: int = FEATURE_SIZE) -> list[int]:
    """Channels after each stride-2 stage: `channels`, doubled each stage, capped at `max_channels`."""
    return [min(channels * 2**i, max_channels) for i in range(conv_stages(image_size, feature_size))]


def norm_layer(kind: str, channels: int) -> nn.Module:
    """The conv net's normalisation: "batch" (BatchNorm, the seed era's) or "group" (GroupNorm with
    gcd(channels, 8) groups, Wu & He 2018: the same function in training and evaluation, no batch statistics)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(channels, 8), channels)
    raise ValueError(f"unknown norm {kind!r}")


class ResBlock(nn.Module):
    """x + f(x) with f = (GroupNorm, SiLU, 3x3 conv) twice: a pre-activation residual block (He et al. 2016)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # GroupNorm, not BatchNorm: the same function in training and evaluation
        self.body = nn.Sequential(
            norm_layer("group", channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
            norm_layer("group", channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class StageConv(nn.Module):
    """x + LeakyReLU(norm(3x3 conv(x))), with the norm's scale zero at the start: a residual layer that
    starts as the identity, so a net with it starts as the net without it (the zero-init of Goyal et al. 2017,
    "Accurate, large minibatch SGD", section 5.1)."""

    def __init__(self, channels: int, norm: str = "batch") -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm = norm_layer(norm, channels)
        nn.init.zeros_(self.norm.weight)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.act(self.norm(self.conv(x)))


def conv_nets(image_size: int, channels: int, max_channels: int, stage_convs: int = 0, norm: str = "batch",
              feature_size: int = FEATURE_SIZE) -> tuple[nn.Module, nn.Module, tuple[int, ...]]:
    """The seed-era conv stacks: 4x4 stride-2 convs + norm down, transposed convs up; and the feature shape.

    stage_convs > 0 adds that many residual 3x3 convs (StageConv) at every scale, after each stride-2 conv of
    the encoder and after each transposed conv of the decoder; the attribute judge has one 3x3 conv per stage.
    A stride-2 layer alone sees a small printed feature (a mouth's curve) through one 4x4 window. Residual and
    starting as the identity: plain added layers trained slower (docs/quality.md). 0 is the net of every run
    so far, layer for layer (its checkpoints load unchanged). norm: "batch" or "group" after every conv but the
    last (norm_layer). feature_size: the side of the last feature map, which the fully connected layers read
    (FEATURE_SIZE, 4, the seed era's; 8 at 64 px: three stages instead of four, (128, 8, 8) features).
    """
    widths = conv_widths(image_size, channels, max_channels, feature_size)
    size = image_size // 2 ** len(widths)

    def refine(width: int) -> list[nn.Module]:
        return [StageConv(width, norm) for _ in range(stage_convs)]

    down: list[nn.Module] = []
    for c_in, c_out in zip([IMAGE_CHANNELS, *widths[:-1]], widths):
        down += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), norm_layer(norm, c_out), nn.LeakyReLU(0.2)]
        down += refine(c_out)
    up: list[nn.Module] = []
    for c_in, c_out in zip(widths[::-1], [*widths[::-1][1:], widths[0] if widths else IMAGE_CHANNELS]):
        up += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), norm_layer(norm, c_out), nn.LeakyReLU(0.2)]
        up += refine(c_out)
    # A final 3x3 conv maps features to RGB at full resolution.
    up.append(nn.Conv2d(widths[0] if widths else IMAGE_CHANNELS, IMAGE_CHANNELS, 3, padding=1))
    return nn.Sequential(*down), nn.Sequential(*up), (widths[-1] if widths else IMAGE_CHANNELS, size, size)


def resconv_nets(image_size: int, channels: int, max_channels: int, blocks: int,
                 feature_size: int = FEATURE_SIZE) -> tuple[nn.Module, nn.Module, tuple[int, ...]]:
    """Residual stacks: `blocks` ResBlocks at every scale, stride-2 convs down, nearest upsampling + 3x3 conv up.

    Raises ValueError where feature_size leaves no stage (feature_size >= image_size)."""
    widths = conv_widths(image_size, channels, max_channels, feature_size)  # (stages,): channels at each scale, fine to coarse
    if not widths:
        raise ValueError(f"resconv needs at least one stride-2 stage: feature_size={feature_size} "
                         f"leaves a {image_size} px image none")
    size = image_size // 2 ** len(widths)
    down: list[nn.Module] = [nn.Conv2d(IMAGE_CHANNELS, widths[0], 3, padding=1)]  # (B, w0, S, S)
    for i, width in enumerate(widths):
        down += [ResBlock(width) for _ in range(blocks)]
        down.append(nn.Conv2d(width, widths[min(i + 1, len(widths) - 1)], 4, stride=2, padding=1))
    down += [norm_layer("group", widths[-1]), nn.SiLU()]
    up: list[nn.Module] = []
    for i in reversed(range(len(widths))):
        # Upsample, then a 3x3 conv: no checkerboard patterns of transposed convs (Odena et al. 2016).
        up += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(widths[min(i + 1, len(widths) - 1)], widths[i], 3, padding=1)]
        up += [ResBlock(widths[i]) for _ in range(blocks)]
    up += [norm_layer("group", widths[0]), nn.SiLU(), nn.Conv2d(widths[0], IMAGE_CHANNELS, 3, padding=1)]
    return nn.Sequential(*down), nn.Sequential(*up), (widths[-1], size, size)


class VAE(nn.Module):
    """A VAE for square RGB images in [0, 1]: encoder -> (mu, logvar) -> z = mu + sigma * eps -> decoder.

    arch="mlp" is the seed's fully connected model; arch="conv" puts strided convolutions before
    and transposed convolutions after the same fully connected `hidden` layer; arch="resconv" puts
    residual blocks at every scale around it; stage_convs adds 3x3 convs at every scale of the conv
    net, norm picks its BatchNorm or GroupNorm and feature_size the side of the last feature map (conv_nets). likelihood="calibrated" adds the decoder's shared log
    sigma as a buffer (the running value from training), so it is saved in the checkpoint.
    """

    def __init__(
        self,
        image_size: int,
        hidden: int = 512,
        latent: int = 32,
        arch: str = "conv",
        channels: int = 32,
        max_channels: int = 256,
        blocks: int = 1,
        likelihood: str = "fixed",
        stage_convs: int = 0,
        norm: str = "batch",
        feature_size: int = FEATURE_SIZE,
    ) -> None:
        super().__init__()
        self.image_size, self.hidden, self.latent, self.arch = image_size, hidden, latent, arch
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}")
        self.likelihood = likelihood
        if likelihood == "calibrated":
            # NaN until the first training batch sets it (LitVAE keeps it as a running value from then on).
            self.register_buffer("log_sigma", torch.full((), math.nan))
        if arch == "mlp":
            self.feature_shape: tuple[int, ...] = (IMAGE_CHANNELS, image_size, image_size)
            self.features: nn.Module = nn.Identity()
            self.unfeatures: nn.Module = nn.Identity()
        elif arch == "conv":
            self.features, self.unfeatures, self.feature_shape = conv_nets(image_size, channels, max_channels,
                                                                           stage_convs, norm, feature_size)
        elif arch == "resconv":
            self.features, self.unfeatures, self.feature_shape = resconv_nets(image_size, channels, max_channels,
                                                                              blocks, feature_size)
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
        """Faces (steps, 3, S, S) between the posterior means of images x_a and x_b (3, S, S) in [0, 1].

        The latents are interpolate_latents(mu_a, mu_b, steps, mode): finite for any pair of means (equal,
        opposite, zero, latent size 1), never longer than the longer mean (slerp: between the two means'
        norms). Raises ValueError for an unknown mode.
        """
        mu_a = self.encode(x_a.reshape(1, *x_a.shape[-3:]))[0][0]
        mu_b = self.encode(x_b.reshape(1, *x_b.shape[-3:]))[0][0]
        return self.decode(interpolate_latents(mu_a, mu_b, steps, mode))


def build_vae(config: dict) -> VAE:
    """The VAE that a run's (validated) config describes: its model section and data.image_size."""
    model = config["model"]
    return VAE(
        image_size=config["data"]["image_size"],
        hidden=model["hidden"],
        latent=model["latent"],
        arch=model["arch"],
        channels=model["channels"],
        max_channels=model["max_channels"],
        blocks=model["blocks"],
        likelihood=model["likelihood"],
        stage_convs=model["stage_convs"],
        norm=model["norm"],
        feature_size=model["feature_size"],
    )
