"""The choices of config keys that code outside the schema reads too (the others are beside their fields)."""

from lego_vae.model.build import VAE, Likelihood

ARCHS = tuple(VAE.registry)  # one per file of lego_vae/model/archs, in the order of their names
LIKELIHOODS = tuple(Likelihood.registry)  # one per file of lego_vae/model/likelihoods
PRIORS = ("normal", "gmm")
JUDGED = ("val/attr_error", "val/fd_judge")  # a study's second objective: labelled faces, or photos
