"""Bayesian optimisation of hidden and latent size: the study (study.py), our GP + EI sampler (sampler.py), plots."""
