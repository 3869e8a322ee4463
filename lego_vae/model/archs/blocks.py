"""Building blocks of the conv architectures: the stride-2 stages' widths, the norms, two residual layers."""

from __future__ import annotations

import math

from torch import Tensor, nn

IMAGE_CHANNELS = 3


def conv_widths(image_size: int, channels: int, max_channels: int, feature_size: int) -> list[int]:
    """Channels after each stride-2 stage: `channels`, doubled each stage, capped at `max_channels`; as many
    stages as halve image_size down to feature_size (fewer where the side turns odd first, none if it is odd)."""
    widths, size = [], image_size
    while size > feature_size and size % 2 == 0:
        widths.append(min(channels * 2 ** len(widths), max_channels))
        size //= 2
    return widths


def norm_layer(kind: str, channels: int) -> nn.Module:
    """The conv net's normalisation: "batch" (BatchNorm, the seed era's) or "group" (GroupNorm with
    gcd(channels, 8) groups, Wu & He 2018: the same function in training and evaluation, no batch statistics).
    Raises ValueError for another kind."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(channels, 8), channels)
    raise ValueError(f"unknown norm {kind!r}")


class ResBlock(nn.Module):
    """x + f(x) with f = (GroupNorm, SiLU, 3x3 conv) twice: a pre-activation residual block (He et al. 2016);
    GroupNorm, not BatchNorm: the same function in training and evaluation."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            norm_layer("group", channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
            norm_layer("group", channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class StageConv(nn.Module):
    """x + LeakyReLU(norm(3x3 conv(x))), the norm's scale zero at the start: a residual layer that starts as the
    identity (the zero-init of Goyal et al. 2017, "Accurate, large minibatch SGD", section 5.1)."""

    def __init__(self, channels: int, norm: str = "batch") -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm = norm_layer(norm, channels)
        nn.init.zeros_(self.norm.weight)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.act(self.norm(self.conv(x)))
