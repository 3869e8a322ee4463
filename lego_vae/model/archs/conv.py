"""The seed-era conv net (model.arch=conv): 4x4 stride-2 convs + norm down, transposed convs up, around the
fully connected `hidden` layer."""

from __future__ import annotations

from torch import nn

from lego_vae.model.archs.blocks import IMAGE_CHANNELS, StageConv, conv_widths, norm_layer
from lego_vae.model.likelihood import Likelihood
from lego_vae.model.vae import VAE


class Conv(VAE):
    """Strided convs before and transposed convs after the fully connected layers.

    stage_convs: residual 3x3 convs (StageConv, starting as the identity) after each stride-2 or transposed
    conv, so a small printed feature is seen through more than one 4x4 window (docs/quality.md); 0 is the net
    of every earlier run, layer for layer. norm: "batch" or "group" after every conv but the last.
    feature_size: the side of the last feature map (4, the seed era's); an image that turns odd first keeps its
    odd side, and feature_size >= image_size leaves no stage (the fully connected layers read the image).
    """

    name = "conv"
    channels_last = True

    def __init__(self, image_size: int, *, hidden: int, latent: int, likelihood: Likelihood, channels: int,
                 max_channels: int, stage_convs: int, norm: str, feature_size: int) -> None:
        widths = conv_widths(image_size, channels, max_channels, feature_size)
        size = image_size // 2 ** len(widths)
        last = widths[0] if widths else IMAGE_CHANNELS  # the width the decoder's last stage writes

        def stage(conv: nn.Module, width: int) -> list[nn.Module]:
            return [conv, norm_layer(norm, width), nn.LeakyReLU(0.2), *(StageConv(width, norm) for _ in range(stage_convs))]

        down = [layer for c_in, c_out in zip([IMAGE_CHANNELS, *widths[:-1]], widths)
                for layer in stage(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), c_out)]
        up = [layer for c_in, c_out in zip(widths[::-1], [*widths[::-1][1:], last])
              for layer in stage(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), c_out)]
        up += [nn.Conv2d(last, IMAGE_CHANNELS, 3, padding=1), nn.Sigmoid()]
        super().__init__(image_size, hidden, latent, likelihood, nn.Sequential(*down), nn.Sequential(*up),
                         (widths[-1] if widths else IMAGE_CHANNELS, size, size), fc_out=nn.LeakyReLU(0.2))
