"""Residual conv net (model.arch=resconv): GroupNorm/SiLU residual blocks at every scale of encoder and decoder,
stride-2 convs down, nearest upsampling + 3x3 conv up, around the fully connected `hidden` layer."""

from __future__ import annotations

from torch import nn

from lego_vae.model.archs.blocks import IMAGE_CHANNELS, ResBlock, conv_widths, norm_layer
from lego_vae.model.likelihood import Likelihood
from lego_vae.model.vae import VAE


class ResConv(VAE):
    """`blocks` ResBlocks at every scale; feature_size as the conv net's. Raises ValueError where feature_size
    leaves no stride-2 stage (feature_size >= image_size, or an odd image)."""

    name = "resconv"

    @classmethod
    def refusal(cls, image_size: int, **options) -> str | None:
        if image_size % 2:
            return f"model.arch=resconv: needs an even data.image_size (got {image_size})"
        if not conv_widths(image_size, 1, 1, options["feature_size"]):
            return (f"model.feature_size={options['feature_size']}: model.arch=resconv needs it below "
                    f"data.image_size={image_size} (at least one stride-2 stage)")
        return None

    def __init__(self, image_size: int, *, hidden: int, latent: int, likelihood: Likelihood, channels: int,
                 max_channels: int, blocks: int, feature_size: int) -> None:
        widths = conv_widths(image_size, channels, max_channels, feature_size)  # (stages,): fine to coarse
        if not widths:
            raise ValueError(f"resconv needs at least one stride-2 stage: feature_size={feature_size} "
                             f"leaves a {image_size} px image none")
        size = image_size // 2 ** len(widths)
        coarser = [*widths[1:], widths[-1]]  # the width after each stage's stride-2 conv
        down: list[nn.Module] = [nn.Conv2d(IMAGE_CHANNELS, widths[0], 3, padding=1)]  # (B, w0, S, S)
        for width, after in zip(widths, coarser):
            down += [*(ResBlock(width) for _ in range(blocks)), nn.Conv2d(width, after, 4, stride=2, padding=1)]
        down += [norm_layer("group", widths[-1]), nn.SiLU()]
        up: list[nn.Module] = []
        for width, before in zip(widths[::-1], coarser[::-1]):
            # Upsample, then a 3x3 conv: no checkerboard patterns of transposed convs (Odena et al. 2016).
            up += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(before, width, 3, padding=1)]
            up += [ResBlock(width) for _ in range(blocks)]
        up += [norm_layer("group", widths[0]), nn.SiLU(), nn.Conv2d(widths[0], IMAGE_CHANNELS, 3, padding=1),
               nn.Sigmoid()]
        super().__init__(image_size, hidden, latent, likelihood, nn.Sequential(*down), nn.Sequential(*up),
                         (widths[-1], size, size), fc_out=nn.LeakyReLU(0.2))
