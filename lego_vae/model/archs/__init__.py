"""The architectures: each module here defines one VAE subclass; importing the package registers them all."""

from lego_vae.model.registry import import_all

import_all(__name__, __path__)
