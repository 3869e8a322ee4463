"""Bayesian optimisation of the search space (`space:`): the study (study.py), our GP + EI sampler (sampler.py), the
plots (plots.py, space_plots.py, front.py; figures.py what they share)."""
