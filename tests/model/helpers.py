"""A VAE built the product's way (make_vae) from the default model options, with a test's own overrides."""

from __future__ import annotations

from omegaconf import OmegaConf

from lego_vae.conf import CONF_DIR
from lego_vae.model.build import make_vae
from lego_vae.model.vae import VAE

# conf/model/conv.yaml: every option of every architecture and likelihood (mlp.yaml and resconv.yaml extend it).
DEFAULT_MODEL = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "model" / "conv.yaml"))


def vae_of(image_size: int, **overrides) -> VAE:
    """make_vae(image_size, **the default model section with overrides), e.g. vae_of(16, arch="mlp", latent=4)."""
    return make_vae(image_size, **{**DEFAULT_MODEL, **overrides})
