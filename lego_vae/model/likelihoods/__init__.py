"""The decoder likelihoods: each module here defines one Likelihood subclass; importing the package registers them all."""

from lego_vae.model.registry import import_all

import_all(__name__, __path__)
